"""The fee account's money: sub-balances (BAL-1) as ledger accounts, the balance
view (BAL-2, BAL-7), spending (BAL-3/4), freezes (FRZ), incoming money (ARR-4),
operator adjustments, credit lines, and the transaction list (收支明细, BAL-5)."""
