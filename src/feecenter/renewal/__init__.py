"""Renewal and expiry (RNW-1..7): what happens to a prepaid resource around its expiry.

- ``tables``: the renewal settings of each resource (auto-renew flag, period) and
  of each account (the default flag, the unified expiry day).
- ``settings``: reading and changing those settings (RNW-1, RNW-4, RNW-5).
- ``management``: the renewal-management lists (RNW-7) and the batch manual
  renewal paid in one merged payment.
- ``recycle_bin``: the resources stopped for expiry, their release time, and
  restoring one by a renewal order (RNW-6).
- ``reminders``: the daily recharge and expiry reminders (RNW-3, RNW-4).
- ``announcements``: prepaid price changes announced to the owners of affected
  resources before they apply (RNW-1).
- ``reminder_jobs``: the daily jobs running those two.

Renewal orders themselves are orders (``orders.create_renewal``), paid like any
other (ORD-1..5). docs/renewal.md.
"""
