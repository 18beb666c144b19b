"""Online recharge (RCH-1..6): recharges, their limits and frequency control, the
payment-gateway port, and the credit of a paid recharge exactly once (ARR-4).

``rules`` holds the limits and pure checks, ``gateway`` the port every payment
provider adapter implements (feecenter.gateways), ``service`` the use cases,
``jobs`` the expiry and missed-notification recovery ([docs/recharge.md]).
"""
