"""The double-entry ledger: the single source of truth for money.

Owns ledger accounts, immutable balanced transactions with idempotency keys,
two-phase holds and reversals, and reconciliation. Sign convention: amounts
are credit-positive, so what the platform owes (customer cash, revenue) is
positive and what it is owed or holds (arrears, advances, bank) is negative.
Every transaction's postings sum to zero.
"""
