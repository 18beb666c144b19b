"""Large simulation runs (docs/simulation.md): wall time, ops/s and peak memory.

    .venv/bin/python benchmarks/simulate.py --accounts 10000 --ops 100000 --hours 2160 \
        --crash-rate 0.01 [--database postgresql+psycopg://…/empty_db]

Without --database it runs on a fresh SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time

from feecenter.db.engine import dispose, make_engine
from feecenter.db.migrate import ensure_schema
from feecenter.simulation.driver import Config, run


def main() -> None:
    parser = argparse.ArgumentParser()
    for name, default in (("seed", 1), ("accounts", 10_000), ("ops", 100_000), ("hours", 2160)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--crash-rate", type=float, default=0.01)
    parser.add_argument("--database")
    parser.add_argument("--durable-commits", action="store_true",
                        help="flush every commit of the driver's own (default: not)")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--progress", type=int, default=5000, help="steps between progress lines")
    args = parser.parse_args()
    url = args.database or f"sqlite:///{tempfile.mkdtemp()}/simulate.db"
    engine = make_engine(url)
    ensure_schema(engine)
    dispose(engine)
    started = time.perf_counter()

    def progress(step, op, result):  # a run cut short still tells its pace
        if (step + 1) % args.progress == 0:
            wall = time.perf_counter() - started
            print(json.dumps({"step": step + 1, "wall_s": round(wall, 1),
                              "ops_per_s": round((step + 1) / wall, 1),
                              "peak_rss_mb": _peak_mb()}), file=sys.stderr, flush=True)

    summary = run(url, Config(seed=args.seed, accounts=args.accounts, ops=args.ops,
                              hours=args.hours, crash_rate=args.crash_rate, full_every=10_000,
                              durable_commits=args.durable_commits, workers=args.workers),
                  on_step=progress)
    wall = time.perf_counter() - started
    print(json.dumps({"backend": url.split(":")[0], "wall_s": round(wall, 1),
                      "ops_per_s": round(args.ops / wall, 1),
                      "peak_rss_mb": _peak_mb(),
                      "state_hash": summary.state_hash, "crashes": summary.crashes}))


def _peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


if __name__ == "__main__":
    main()
