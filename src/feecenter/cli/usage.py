"""``feecenter usage import FILE``: metering records from a CSV or JSON-lines file
(docs/usage.md). Prints the counts and every rejected record with its reason;
exit 1 when any record was rejected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from feecenter.cli.common import JsonOpt

usage_app = typer.Typer(help="Usage intake / 用量上报", no_args_is_help=True)


@usage_app.command("import")
def import_file(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
                format: Annotated[Optional[str], typer.Option(help="csv | jsonl (default: by suffix)")] = None,  # noqa: A002
                as_json: JsonOpt = False) -> None:
    """Import a file of metering records; bad records are listed with their reasons."""
    import getpass

    from feecenter.accounts.permissions import Actor
    from feecenter.runtime import open_runtime
    from feecenter.usage import service as usage

    rt = open_runtime()
    try:
        result = usage.ingest_file(rt.engine, rt.clock,
                                   Actor("operator", f"cli:{getpass.getuser()}"), path, format)
    except Exception as exc:  # a domain error: print it the CLI way
        from feecenter.errors import FeeCenterError

        if not isinstance(exc, FeeCenterError):
            raise
        print(json.dumps({"error": exc.to_dict()}, ensure_ascii=False)) if as_json else \
            Console(stderr=True).print(f"错误 / error: {exc.message}", style="red", markup=False)
        raise typer.Exit(1) from None
    payload = result.to_dict()
    if as_json:
        print(json.dumps(payload, ensure_ascii=False))
    else:
        out = Console()
        out.print(f"accepted {result.accepted}  corrected {result.corrected}  "
                  f"duplicates {result.duplicates}  "
                  f"rejected {result.rejected}", markup=False)
        for r in result.rejections:
            out.print(f"line {r.line} [{r.field}] {r.reason_zh} / {r.reason_en}", markup=False)
    raise typer.Exit(0 if result.rejected == 0 else 1)
