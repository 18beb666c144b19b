"""Shrinking a failing run: the same seed with fewer accounts, then a shorter
prefix of operations, kept while it still fails; returns the smallest failure.

Each attempt runs on a fresh database from ``fresh_url()``.
"""

from __future__ import annotations

from dataclasses import replace

from feecenter.simulation.driver import Config, SimulationFailure, run


def shrink(config: Config, failure: SimulationFailure, fresh_url, *, budget: int = 12
           ) -> SimulationFailure:
    best = failure
    for field, floor in (("accounts", 2), ("ops", 10)):
        while budget > 0:
            current = getattr(best.config, field)
            smaller = max(floor, current // 2 if field == "accounts" else best.step + 1)
            if field == "ops" and smaller >= current:
                smaller = max(floor, current // 2)
            if smaller >= current:
                break
            budget -= 1
            found = _fails(replace(best.config, **{field: smaller}), fresh_url)
            if found is None:
                break
            best = found
    return best


def _fails(config: Config, fresh_url) -> SimulationFailure | None:
    try:
        run(fresh_url(), config)
    except SimulationFailure as failure:
        return failure
    return None
