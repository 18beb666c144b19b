"""Withdrawals (WDR-1..7): money going back out of a customer's fee account.

- ``tables``: the withdrawals, their legs (one ledger hold each) and the operators'
  payout batches.
- ``rules``: pure rules — the withdrawable amount from its parts (WDR-1, WDR-7), the
  original route's windows and LIFO plan (WDR-2), when each leg's money is expected.
- ``service``: the withdrawable amount of an account (read from ``funds.balance_view``
  and ``invoices.invoiceable.invoice_debt``, INV-7); previewing and applying (the
  money held at once through ``funds.hold_for_withdrawal``, WDR-4); reading them.

docs/withdrawal.md.
"""
