"""``feecenter jobs …`` and ``feecenter worker``: scheduled work (docs/jobs.md).

- ``jobs run --until "YYYY-MM-DD HH:MM:SS"``: the simulator. A simulated clock
  starts at the later of the wall clock and the latest period this database has
  already enqueued (so simulated time never runs backwards), then moves hour by
  hour to ``--until`` (Asia/Shanghai), running what is due at each step. Prints
  per-job counts.
- ``jobs list [--state S] [--job J]``: the runs, newest period first.
- ``jobs retry [--job J] [--period K]``: give failed runs a fresh set of attempts.
- ``worker [--poll-seconds N] [--once]`` (``worker_command``): runs due jobs on
  the wall clock until interrupted (SIGINT/SIGTERM finish the current run first).

Same contract as the rest of the CLI (docs/cli.md): ``--json`` prints exactly one
JSON object; exit 0 done, 1 refused (the error names the field), 2 bad usage.
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from feecenter.cli.common import JsonOpt, emit as _emit, flag, out, refusals as _refusals
from feecenter.cli.common import operator_actor as _actor, runtime as _runtime

jobs_app = typer.Typer(help="Scheduled jobs / 定时任务", no_args_is_help=True)


OUTCOME_LABELS = {"enqueued": "入队\nenqueued", "done": "完成\ndone", "retry": "待重试\nretry",
                  "failed": "失败\nfailed", "lost": "丢失\nlost"}


def _render_counts(title: str, data: dict) -> None:
    table = Table(title=title)
    table.add_column("任务 / job", no_wrap=True)
    for label in OUTCOME_LABELS.values():
        table.add_column(label, justify="right")
    for job, per in data["jobs"].items():
        table.add_row(escape(job), *(str(per.get(k, 0)) for k in OUTCOME_LABELS))
    out.print(table)
    if data.get("capped"):
        out.print("[yellow]上限已到，仍有到期任务 / a bound was reached; more work is due[/yellow]")


# ---------------------------------------------------------------- jobs run

@jobs_app.command("run")
def run(until: Annotated[str, typer.Option(help='simulate up to "YYYY-MM-DD HH:MM:SS" '
                                                '(Asia/Shanghai)')],
        as_json: JsonOpt = False) -> None:
    """Simulate time up to --until, running every job as it falls due (demo, tests)."""
    from feecenter.clock import FixedClock, SystemClock, parse_business_time
    from feecenter.jobs import runner

    with _refusals(as_json):
        end = parse_business_time(until, "until")
        rt = _runtime()
        clock = FixedClock(runner.simulation_start(rt.engine, SystemClock().now()))
        report = runner.run_until(rt.engine, clock, end)
    payload = report.to_dict()

    def render(data: dict) -> None:
        _render_counts(f"模拟 / simulated {data['start']} → {data['until']} "
                       f"({data['steps']} steps)", data)

    _emit(as_json, payload, render)


# ---------------------------------------------------------------- jobs list / retry

@jobs_app.command("list")
def list_runs(
    state: Annotated[Optional[str], typer.Option(help="pending | running | done | failed")] = None,
    job: Annotated[Optional[str], typer.Option(help="one job, e.g. orders.expire_unpaid")] = None,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int, typer.Option(help="1-1000")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Job runs, newest period first."""
    from feecenter.jobs import runner

    with _refusals(as_json):
        rt = _runtime()
        page = runner.list_runs(rt.engine, state=state, job=job, offset=offset, limit=limit)

    def render(data: dict) -> None:
        table = Table(title=f"任务运行 / job runs ({data['total']})")
        table.add_column("job", no_wrap=True)
        table.add_column("period", no_wrap=True)
        for col in ("state", "attempts", "due_at", "finished_at", "result", "last_error"):
            table.add_column(col)
        for item in data["items"]:
            error = (item["last_error"] or "").splitlines()[:1]
            table.add_row(escape(item["job"]), item["period"], item["state"],
                          str(item["attempts"]), item["due_at"] or "", item["finished_at"] or "",
                          escape(json.dumps(item["result"], ensure_ascii=False))
                          if item["result"] is not None else "",
                          escape(error[0][:80]) if error else "")
        out.print(table)

    _emit(as_json, page, render)


@jobs_app.command("retry")
def retry(job: Annotated[Optional[str], typer.Option(help="only this job")] = None,
          period: Annotated[Optional[str], typer.Option(help='only this period key, e.g. '
                                                             '"2026-01-31T23"')] = None,
          as_json: JsonOpt = False) -> None:
    """Give failed runs a fresh set of attempts; the worker or simulator runs them."""
    from feecenter.jobs import runner

    with _refusals(as_json):
        rt = _runtime()
        count = runner.retry_failed(rt.engine, rt.clock, job=job, period_key=period,
                                     actor=_actor())
    _emit(as_json, {"retried": count},
          lambda data: out.print(f"重新排队 / requeued: {data['retried']}", markup=False))


# ---------------------------------------------------------------- worker

def worker_command(
    poll_seconds: Annotated[float, typer.Option(help="seconds between passes")] = 5,
    once: Annotated[bool, flag("--once", help="one pass, then exit")] = False,
    worker_id: Annotated[Optional[str], typer.Option(help="name in job_runs.claimed_by "
                                                          "(default host:pid:random)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run due jobs on the wall clock until interrupted (Ctrl-C or SIGTERM).

    Several workers may run against PostgreSQL; against SQLite run one."""
    from feecenter.clock import business_time_text
    from feecenter.jobs import runner

    stop = threading.Event()
    with _refusals(as_json):
        if not 0 < poll_seconds <= 3600:
            from feecenter.errors import invalid

            raise invalid("poll_seconds", "轮询间隔须在 0–3600 秒之间",
                          "--poll-seconds must be in (0, 3600]")
        rt = _runtime()
        name = worker_id or runner.default_worker_id()
        previous = _install_stop_handlers(stop)

        def on_pass(report) -> None:
            if not as_json and report.runs.outcomes:
                data = report.to_dict()
                now = business_time_text(rt.clock.now())
                _render_counts(f"{now} — worker {escape(name)}", data)

        try:
            total = runner.work(rt.engine, rt.clock, worker_id=name, poll_seconds=poll_seconds,
                                once=once, stop=stop, on_pass=on_pass)
        finally:
            _restore_handlers(previous)
    payload = {"worker_id": name, **total.to_dict()}
    if as_json:
        print(json.dumps(payload, ensure_ascii=False, default=str))
    elif not total.runs.outcomes:
        out.print(f"worker {escape(name)}: 无到期任务 / nothing was due", highlight=False)


def _install_stop_handlers(stop: threading.Event) -> dict:
    """SIGINT/SIGTERM set ``stop``: the current run finishes, then the loop ends; a
    second signal interrupts the current run (its row goes back to pending)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}

    def handler(signum, _frame):
        if stop.is_set():  # asked twice: stop now; the interrupted run is handed back
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
