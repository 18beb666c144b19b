"""Coupons (CPN-1..6): vouchers, cash coupons and discount coupons of an account.

- ``tables``: coupons, redemption-code batches and codes, coupon uses.
- ``rules``: pure functions — which coupons pay which lines of one payment,
  with a reason for each that does not; validation of granted terms.
- ``service``: operator grants and codes, customer redemption and listing,
  expiry, and the two-phase use (``allocate`` / ``reserve`` / ``confirm`` /
  ``release``, ``use_now``, ``refund``) that payment and settlement call.
- ``jobs``: the hourly ``coupons.expire`` job.

See docs/coupons.md.
"""
