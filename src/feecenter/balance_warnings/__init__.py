"""Balance warnings (XTR-2): each account's warning settings, the days-left
estimate from the last 24 hours of postpaid spending, and the daily notice.
docs/balance-warning.md."""
