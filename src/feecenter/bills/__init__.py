"""Bills over the fees settlement and orders record (BIL-1..8). docs/bills.md.

- Cost bills (费用账单, BIL-1, BIL-2, BIL-5, BIL-6): ``lines`` / ``service``: the L3
  line detail of a month (postpaid lines from settlement, prepaid order lines from
  orders, read-only), the daily roll-ups (``bill_rollups``, ``bill_rollup_days``:
  owned here) and the L0 overview, L1 summaries and L2 resource bills read from
  them, and the bill check of ``feecenter reconcile`` (L0 = Σ L1 = Σ L2 = Σ L3).
- Consumption bills (消耗账单, BIL-4): ``consumption`` and its pure rule
  ``consumption_rules`` (prepaid fees spread over their service days).
"""
