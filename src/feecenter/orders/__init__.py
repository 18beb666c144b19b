"""Prepaid orders and payment (ORD-1..4, FRZ-3 prepaid side).

Kinds: new purchase, renewal, upgrade, downgrade, refund (退订). States:
unpaid, paid, delivered, delivery_failed, refunded, expired, voided. Paying
freezes each order's amount (one ledger transaction for the whole, possibly
merged, payment); delivery posts the freeze to revenue, a failed delivery
releases it.
"""
