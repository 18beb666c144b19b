"""Statement parsing keeps memory constant in the file's size (RMT-2): the peak
traced while reading 40,000 lines stays within 1.5 times the peak at 5,000
(keeping the transfers would take ~1 KB each: 40 MB here, against ~1.4 MB)."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import pytest

from feecenter.remittances import statements

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import statement_files  # noqa: E402

pytestmark = [pytest.mark.spec("RMT-2"), pytest.mark.slow]


def peak_while_reading(path: Path) -> tuple[int, int]:
    parsed = statements.parse(path)
    tracemalloc.start()
    count = sum(1 for _ in parsed.transfers())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, count


@pytest.mark.parametrize("kind", ["mt940", "camt.053.001.08"])
def test_peak_memory_does_not_grow_with_the_file(tmp_path, kind):
    peaks = {}
    for lines in (5_000, 40_000):
        path = tmp_path / f"{lines}.stmt"
        if kind == "mt940":
            expected = statement_files.write_mt940(path, lines)
        else:
            expected = statement_files.write_camt053(path, lines, kind)
        peaks[lines], count = peak_while_reading(path)
        assert count == expected.credit_count
    assert peaks[40_000] < peaks[5_000] * 1.5, peaks
