"""Arrears escalation (ARR-3): dunning, protection, isolation (stop), destruction, restore.

- ``policy``: the per-product arrears policy (a configurable mapping by
  product code or product class, with defaults).
- ``rules``: pure functions — which steps are due for a resource.
- ``service``: ``escalate(engine_or_conn, clock)`` and the readers.
- ``jobs``: the hourly ``arrears.escalate`` job.
"""
