"""The value strings every rendering uses: fen as yuan ("12.30"), 1e-8 yuan as
8 decimals ("0.16666650"), stored UTC times as business time ("YYYY-MM-DD
HH:MM:SS", Asia/Shanghai). The formats themselves live once, in ``money.py``
and ``clock.py``; this module applies them field by field (``rated`` and
``time_text`` leave None as None)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from feecenter.clock import business_time_text
from feecenter.money import format_rated, format_yuan


def rated(micro: int | None) -> str | None:
    """16666650 -> "0.16666650"; None stays None."""
    return None if micro is None else format_rated(micro)


def time_text(value: datetime | None) -> str | None:
    """A stored (naive UTC) or aware time -> business time text; None (or no time) stays None."""
    return business_time_text(value) if value else None


def with_yuan(data: Mapping, names: Iterable[str]) -> dict:
    """A copy of ``data`` with the fen amounts under ``names`` as yuan strings."""
    names = frozenset(names)
    return {k: format_yuan(v) if k in names else v for k, v in data.items()}
