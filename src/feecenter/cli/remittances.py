"""``feecenter statement …`` and ``feecenter remittance …``: corporate remittances
for operators (RMT-2, RMT-3, RMT-6) — import a bank statement file (MT940 or
camt.053) with a progress bar and a summary table, list the imports; list an
operators' queue, assign a record to an account, release a held one.

Same contract as the rest of the CLI (docs/cli.md): ``--json`` prints exactly one
JSON object (``present.remittances``); exit 0 done, 1 refused (a refused file
names the line or element and imports nothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from feecenter.cli.common import JsonOpt, err, out
from feecenter.cli.common import emit as _emit
from feecenter.cli.common import operator_actor as _actor
from feecenter.cli.common import refusals as _refusals
from feecenter.cli.common import runtime as _runtime

statement_app = typer.Typer(help="Bank statements (RMT-2) / 银行对账单", no_args_is_help=True)
remittance_app = typer.Typer(help="Corporate remittances, operators (RMT-3) / 对公汇款",
                             no_args_is_help=True)

IdArg = Annotated[int, typer.Argument(help="remittance id", min=1)]
SUMMARY_ROWS = (("credited", "已充值 / credited"), ("unassigned", "待分配 / unassigned"),
                ("pending", "待签署或待确认 / pending"), ("held", "待人工处理 / held"),
                ("not_ours", "非本平台账号 / not ours"), ("duplicates", "重复 / duplicates"))


@statement_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="the statement file (MT940 or camt.053 XML)")],
    fmt: Annotated[str | None, typer.Option("--format", help=(
        "mt940 | camt.053 | camt.053.001.02 | camt.053.001.08 (default: detected)"))] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a statement, all or nothing: progress bar, then the summary."""
    from feecenter.db.engine import transaction
    from feecenter.present.remittances import summary_json
    from feecenter.remittances.statement_import import import_statement

    with _refusals(as_json), _progress(not as_json, file.stat().st_size) as on_progress:
        rt = _runtime()
        with transaction(rt.engine) as conn:
            summary = import_statement(conn, rt.clock, _actor(), file, fmt=fmt,
                                       on_progress=on_progress)
    _emit(as_json, summary_json(summary), _render_summary)


class _progress:
    """A Rich progress bar by bytes read (on stderr, so --json stays one object)."""

    def __init__(self, shown: bool, size: int):
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TimeRemainingColumn)

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TimeRemainingColumn(), console=err, disable=not shown,
                                 transient=False)
        self.task = self.progress.add_task("读取 / reading", total=size)

    def __enter__(self):
        self.progress.start()
        return self.update

    def update(self, done: int, total: int) -> None:
        """Bytes read so far; once all is read the lines are being written."""
        label = "写入 / writing" if done >= total else "读取 / reading"
        self.progress.update(self.task, completed=done, total=total, description=label)

    def __exit__(self, *exc) -> None:
        self.progress.stop()


def _render_summary(summary: dict) -> None:
    table = Table(title=f"导入 / import #{summary['import_id']}: {summary['lines']} 行 / lines")
    table.add_column("结果 / outcome")
    table.add_column("笔数 / count", justify="right")
    for key, label in SUMMARY_ROWS:
        table.add_row(label, str(summary[key]))
    table.add_section()
    table.add_row("新到账金额 / new amount (CNY)", summary["new_amount"])
    table.add_row("已充值金额 / credited amount (CNY)", summary["credited_amount"])
    out.print(table)
    for reference in summary["not_ours_references"]:
        out.print(f"非本平台账号 / not ours: {reference}", markup=False, highlight=False)


@statement_app.command("imports")
def imports(limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
            as_json: JsonOpt = False) -> None:
    """Statement imports, newest first."""
    from feecenter.present.remittances import import_json
    from feecenter.remittances import service

    with _refusals(as_json):
        rt = _runtime()
        with rt.engine.connect() as conn:
            rows = [import_json(r) for r in service.list_imports(conn, _actor(), limit=limit)]
    _emit(as_json, {"items": rows}, _render_imports)


def _render_imports(payload: dict) -> None:
    table = Table(title="对账单导入 / statement imports")
    for name in ("id", "imported_at", "source", "lines", "credited", "unassigned", "pending",
                 "held", "not_ours", "duplicates", "credited_amount", "operator"):
        table.add_column(name, justify="right" if name not in ("source", "operator") else "left")
    for row in payload["items"]:
        table.add_row(*(str(row[k]) for k in (
            "id", "imported_at", "source", "lines", "credited", "unassigned", "pending", "held",
            "not_ours", "duplicates", "credited_amount", "operator")))
    out.print(table)


@remittance_app.command("queue")
def queue(queue_name: Annotated[str, typer.Argument(
              metavar="QUEUE", help="unassigned | pending | held | review_failed | flagged | not_ours")],
          limit: Annotated[int, typer.Option(min=1, max=200)] = 100,
          as_json: JsonOpt = False) -> None:
    """An operators' queue, oldest first."""
    from feecenter.present.remittances import remittance_json
    from feecenter.remittances import service

    with _refusals(as_json):
        rt = _runtime()
        with rt.engine.connect() as conn:
            page = service.operator_queue(conn, _actor(), queue_name, limit=limit)
    _emit(as_json, {"queue": queue_name, "total": page["total"],
                    "items": [remittance_json(r) for r in page["items"]]}, _render_queue)


def _render_queue(payload: dict) -> None:
    table = Table(title=f"{payload['queue']}: {payload['total']}")
    for name in ("id", "arrived_at", "amount", "currency", "payer_name", "payee_account",
                 "uin", "state", "reason"):
        table.add_column(name, overflow="fold")
    for row in payload["items"]:
        table.add_row(*("" if row[k] is None else str(row[k]) for k in (
            "id", "arrived_at", "amount", "currency", "payer_name", "payee_account", "uin",
            "state_zh", "reason")))
    out.print(table)


@remittance_app.command("assign")
def assign(remittance_id: IdArg,
           uin: Annotated[int, typer.Argument(help="the account (UIN)", min=1)],
           as_json: JsonOpt = False) -> None:
    """Give an unassigned (or held) remittance to an account."""
    from feecenter.remittances import service

    _emit(as_json, _in_transaction(as_json, lambda conn, rt: service.assign(
        conn, rt.clock, _actor(), remittance_id, uin)))


@remittance_app.command("release")
def release(remittance_id: IdArg, as_json: JsonOpt = False) -> None:
    """Release a held CNY remittance to payer verification."""
    from feecenter.remittances import service

    _emit(as_json, _in_transaction(as_json, lambda conn, rt: service.release(
        conn, rt.clock, _actor(), remittance_id)))


HolderOpt = Annotated[str, typer.Option(help="收款户名 / the payer's account holder")]
BankAccountOpt = Annotated[str, typer.Option(help="收款银行账号 / bank account, 8-30 digits")]
BankOpt = Annotated[str, typer.Option(help="开户银行 / the bank")]
ReasonOpt = Annotated[str, typer.Option(help="原因 / why it is refunded")]
BranchOpt = Annotated[str, typer.Option(help="开户支行 / branch")]


@remittance_app.command("refund-unassigned")
def refund_unassigned(remittance_id: IdArg, holder: HolderOpt, bank_account: BankAccountOpt,
                      bank: BankOpt, reason: ReasonOpt, branch: BranchOpt = "",
                      as_json: JsonOpt = False) -> None:
    """Refund money of no account (unassigned, or held before any account was known)
    to its payer (RMT-11), with the payout details the operator collected."""
    _refund("refund_unassigned", remittance_id, holder, bank_account, bank, branch, reason,
            as_json)


@remittance_app.command("refund-remainder")
def refund_remainder(remittance_id: IdArg, holder: HolderOpt, bank_account: BankAccountOpt,
                     bank: BankOpt, reason: ReasonOpt, branch: BranchOpt = "",
                     as_json: JsonOpt = False) -> None:
    """Refund to its payer what no legacy form claimed of a legacy transfer, once
    (RMT-10, RMT-11), with the payout details the operator collected."""
    _refund("refund_legacy_remainder", remittance_id, holder, bank_account, bank, branch,
            reason, as_json)


def _refund(action: str, remittance_id: int, holder: str, bank_account: str, bank: str,
            branch: str, reason: str, as_json: bool) -> None:
    """Run ``remittances.cases.<action>`` with the payout details, in one transaction."""
    from feecenter.db.engine import transaction
    from feecenter.remittances import cases

    payout = {"holder": holder, "bank_account": bank_account, "bank": bank, "branch": branch}
    with _refusals(as_json):
        rt = _runtime()
        with transaction(rt.engine) as conn:
            done = getattr(cases, action)(conn, rt.clock, _actor(), remittance_id,
                                          payout=payout, reason=reason)
    _emit(as_json, done)


def _in_transaction(as_json: bool, change) -> dict:
    """Run ``change(conn, rt)`` in one transaction; the record it returns, shown."""
    from feecenter.db.engine import transaction
    from feecenter.present.remittances import remittance_json

    with _refusals(as_json):
        rt = _runtime()
        with transaction(rt.engine) as conn:
            return remittance_json(change(conn, rt))
