"""Pure escalation rules (ARR-3): which steps are due for one resource, now.

No database, no clock: plain values in, plain values out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from feecenter.arrears.policy import ArrearsPolicy

STOP_WARNING = "stop_warning"
STOPPED = "stopped"
DESTROY_WARNING = "destroy_warning"
DESTROYED = "destroyed"
RESOURCE_STEPS = (STOP_WARNING, STOPPED, DESTROY_WARNING, DESTROYED)
# ARR-6: the stop reasons of the operators' measures (resources.resource_stops.reason);
# a case closing restarts what MEASURE_STOP stopped, as it restarts its own stops
MEASURE_STOP = "arrears_measure"
MEASURE_RECLAIM = "arrears_reclaim"


@dataclass(frozen=True)
class Schedule:
    stop_at: datetime
    destroy_at: datetime  # planned; a late warning pushes the real time later


@dataclass(frozen=True)
class Step:
    kind: str
    stop_at: datetime
    destroy_at: datetime  # when destruction will (or did) happen, as promised to the customer


def schedule(started_at: datetime, policy: ArrearsPolicy) -> Schedule:
    stop_at = started_at + policy.protection
    return Schedule(stop_at=stop_at, destroy_at=stop_at + policy.isolation)


def due_steps(started_at: datetime, now: datetime, policy: ArrearsPolicy, state: str,
              done: Mapping[str, datetime]) -> list[Step]:
    """The steps due for a resource at ``now``, in order.

    ``state``: the resource's state (running | stopped | recycled); ``done``:
    the steps already taken for it in this case, with when. Rules:

    - recycled, or destroyed already: nothing;
    - running and not stopped by this case: the stop once the protection is
      over; before that, a stop warning ``policy.stop_warning`` ahead (skipped
      if the stop itself is already due);
    - running although this case stopped it (an operator restarted it): nothing;
    - stopped: a destruction warning ``policy.destroy_warning`` before the
      planned destruction; destruction at the later of the planned time and
      the warning + ``policy.destroy_warning`` — never without a warning.
    """
    if state == "recycled" or DESTROYED in done:
        return []
    plan = schedule(started_at, policy)
    steps: list[Step] = []
    if state == "running":
        if STOPPED in done:
            return []
        if now < plan.stop_at:
            if now >= plan.stop_at - policy.stop_warning and STOP_WARNING not in done:
                steps.append(Step(STOP_WARNING, plan.stop_at, plan.destroy_at))
            return steps
        steps.append(Step(STOPPED, plan.stop_at, plan.destroy_at))
    warned_at = done.get(DESTROY_WARNING)
    if warned_at is None:
        if now >= plan.destroy_at - policy.destroy_warning:
            steps.append(Step(DESTROY_WARNING, plan.stop_at,
                              max(plan.destroy_at, now + policy.destroy_warning)))
        return steps
    destroy_at = max(plan.destroy_at, warned_at + policy.destroy_warning)
    if now >= destroy_at:
        steps.append(Step(DESTROYED, plan.stop_at, destroy_at))
    return steps


def next_step(started_at: datetime, now: datetime, policy: ArrearsPolicy, state: str,
              done: Mapping[str, datetime]) -> tuple[str, datetime] | None:
    """What happens next to a resource of an open case, and when, as ``due_steps``
    will take it: the stop (running), the destruction (stopped: never sooner than
    ``policy.destroy_warning`` after its warning), or nothing (recycled, destroyed,
    or restarted by an operator)."""
    if state == "recycled" or DESTROYED in done:
        return None
    plan = schedule(started_at, policy)
    if state == "running":
        return None if STOPPED in done else (STOPPED, plan.stop_at)
    warned_at = done.get(DESTROY_WARNING)
    warning_ends = (warned_at if warned_at is not None else now) + policy.destroy_warning
    return DESTROYED, max(plan.destroy_at, warning_ends)
