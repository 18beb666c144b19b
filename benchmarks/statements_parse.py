#!/usr/bin/env python
"""Statement parse speed and memory: transactions per second and peak RSS for
generated MT940 and camt.053 files (benchmarks/statement_files.py).

    .venv/bin/python benchmarks/statements_parse.py [--lines N] [--rss 100000,1000000]
                                                    [--profile] [--json]

Bare parse: ``statements.parse(path)`` then every Transfer read (nothing
stored), timed after the file is written; the camt XSD is compiled once before
timing. Each format's peak RSS is measured in a fresh child process
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) for each size in ``--rss``,
next to an empty child's RSS as the baseline. ``--profile`` prints the top
functions of a cProfile run per format.

The import target is ≥ 50,000 lines/s end to end; this is its ceiling. Printed,
never asserted: a documented command, not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import statement_files  # noqa: E402

from feecenter.remittances import statements  # noqa: E402
from feecenter.remittances.statements import camt_format  # noqa: E402

KINDS = ("mt940", "camt.053.001.02", "camt.053.001.08")


def write(kind: str, path: Path, lines: int):
    if kind == "mt940":
        return statement_files.write_mt940(path, lines)
    return statement_files.write_camt053(path, lines, kind)


def read_all(path: Path) -> int:
    return sum(1 for _ in statements.parse(path, max_bytes=1 << 40).transfers())


def rate(kind: str, path: Path, lines: int) -> dict:
    if kind != "mt940":
        camt_format.schema(kind)
    started = time.perf_counter()
    credits = read_all(path)
    seconds = time.perf_counter() - started
    return {"format": kind, "lines": lines, "credits": credits, "seconds": round(seconds, 2),
            "lines_per_s": round(lines / seconds), "bytes": path.stat().st_size}


def child_rss(path: Path | None) -> int:
    """Peak RSS in KiB of a child that reads ``path`` (None: imports only)."""
    code = ("import resource, sys; from pathlib import Path; sys.path.insert(0, %r); "
            "from feecenter.remittances import statements; " % str(Path(__file__).resolve().parent))
    if path is not None:
        code += ("sum(1 for _ in statements.parse(Path(%r), max_bytes=1 << 40).transfers()); " % str(path))
    code += "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    return int(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                              text=True).stdout.strip())


def profile(kind: str, path: Path) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    read_all(path)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--rss", default="100000,1000000", help="sizes for the RSS children ('' for none)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {"rates": [], "rss_kib": {}, "baseline_rss_kib": child_rss(None)}
    with tempfile.TemporaryDirectory() as folder:
        for kind in KINDS:
            path = Path(folder) / f"{kind}.{args.lines}"
            write(kind, path, args.lines)
            results["rates"].append(rate(kind, path, args.lines))
            if args.profile:
                print(f"--- profile {kind} ---\n{profile(kind, path)}", file=sys.stderr)
            path.unlink()
        for size in [int(s) for s in args.rss.split(",") if s]:
            for kind in KINDS:
                path = Path(folder) / f"{kind}.{size}"
                write(kind, path, size)
                results["rss_kib"][f"{kind}@{size}"] = child_rss(path)
                path.unlink()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for row in results["rates"]:
        print(f"{row['format']:<17} {row['lines']:>9,} lines  {row['seconds']:>7.2f} s  "
              f"{row['lines_per_s']:>8,} lines/s  ({row['credits']:,} credits, {row['bytes'] / 1e6:.1f} MB)")
    print(f"peak RSS, empty child: {results['baseline_rss_kib'] / 1024:.0f} MiB")
    for key, kib in results["rss_kib"].items():
        print(f"peak RSS {key:<26} {kib / 1024:>6.0f} MiB")


if __name__ == "__main__":
    main()
