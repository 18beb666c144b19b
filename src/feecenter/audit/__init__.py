"""The operators' audit log: who did what to which account, written by every
service that takes an operator's or customer's administrative action."""
