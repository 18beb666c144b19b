"""BIL-3's month of a bill line, without a database: the July example."""

import pytest

from feecenter.settlement.rules import statistic_month


@pytest.mark.spec("BIL-3")
def test_switched_in_july_june_and_july_usage_are_julys():
    assert statistic_month("2026-07", "2026-06", None) == "2026-07"  # deduction time
    assert statistic_month("2026-06", "2026-05", "2026-07") == "2026-06"  # before: unchanged
    assert statistic_month("2026-07", "2026-06", "2026-07") == "2026-07"  # June's, 1 July
    assert statistic_month("2026-08", "2026-07", "2026-07") == "2026-07"  # July's, 1 August
    assert statistic_month("2026-09", "2026-08", "2026-07") == "2026-08"  # by usage after
    assert statistic_month("2026-08", "2026-06", "2026-07") == "2026-07"  # late: the switch month
