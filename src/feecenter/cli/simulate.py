"""``feecenter simulate``: the deterministic simulation of a small cloud
(docs/simulation.md) on a database of its own: a fresh SQLite file by default,
or ``--database URL`` (migrated, empty). Prints a summary and the final state
hash; on a violated invariant, the seed, the step, a reproduction command and,
with ``--shrink``, a smaller failing run (exit code 1).
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from feecenter.cli.common import JsonOpt, emit, err, flag


def simulate_command(
    seed: Annotated[int, typer.Option(help="the seed: same seed, same run")] = 1,
    accounts: Annotated[int, typer.Option(help="accounts in the simulated cloud")] = 20,
    ops: Annotated[int, typer.Option(help="operations to run")] = 1000,
    hours: Annotated[int, typer.Option(help="simulated hours they are spread over")] = 72,
    crash_rate: Annotated[float, typer.Option(help="share of operations killed (SIGKILL)")] = 0.0,
    dup_rate: Annotated[float, typer.Option(help="share of operations sent twice")] = 0.05,
    rerun_settled: Annotated[bool, flag(
        "--rerun-settled/--rerun-latest-only",
        help="settle older periods again (the default), or only the period just ended")] = True,
    database: Annotated[Optional[str], typer.Option(help="an empty, migrated database URL")] = None,
    shrink: Annotated[bool, flag("--shrink", help="on failure, look for a smaller one")] = False,
    workers: Annotated[int, typer.Option(
        help="PostgreSQL: processes running each batch of operations at once")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Simulate a small cloud from a seed and check the invariants after every step."""
    from feecenter.simulation.driver import Config, SimulationFailure, run
    from feecenter.simulation.shrink import shrink as find_smaller

    config = Config(seed=seed, accounts=accounts, ops=ops, hours=hours, crash_rate=crash_rate,
                    dup_rate=dup_rate, rerun_settled=rerun_settled)
    scratch = Path(tempfile.mkdtemp(prefix="feecenter-sim-"))
    if workers > 1:
        if not (database or "").startswith("postgresql"):
            err.print("--workers needs --database postgresql+psycopg://… (SQLite has one writer)")
            raise typer.Exit(2)
        config = replace(config, workers=workers)
    try:
        summary = run(database or _fresh(scratch), config)
    except SimulationFailure as failure:
        err.print(str(failure), markup=False, highlight=False)
        if shrink:
            smaller = find_smaller(config, failure, lambda: _fresh(scratch))
            err.print(f"smallest failing run: {smaller.config.command()} "
                      f"(step {smaller.step})", markup=False)
        raise typer.Exit(1) from None
    emit(as_json, summary.to_dict())


def _fresh(directory: Path) -> str:
    """A new, migrated SQLite database in ``directory``."""
    from feecenter.db.engine import dispose, make_engine
    from feecenter.db.migrate import ensure_schema

    url = f"sqlite:///{directory / f'sim-{uuid.uuid4().hex[:8]}.db'}"
    engine = make_engine(url)
    ensure_schema(engine)
    dispose(engine)
    return url
