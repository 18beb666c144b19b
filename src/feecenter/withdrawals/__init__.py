"""Withdrawals (WDR-1..7): money going back out of a customer's fee account.

- ``rules``: pure rules — the withdrawable amount from its parts (WDR-1, WDR-7).
- ``service``: the withdrawable amount of an account, its parts read from the
  ledger's balances (``funds.balance_view``) and the invoice debt
  (``invoices.invoiceable.invoice_debt``, INV-7).

Owns no table yet: the withdrawals themselves (WDR-2..6) come later in issue #26.
docs/withdrawal.md.
"""
