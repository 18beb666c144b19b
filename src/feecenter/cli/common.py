"""What every CLI module shares: consoles, the --json option, the operator actor,
the runtime, and the scripting contract (one JSON object with --json; a domain
refusal is a red line or a JSON error object, and exit code 1)."""

from __future__ import annotations

import getpass
import json
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console

from feecenter.accounts.permissions import Actor
from feecenter.errors import FeeCenterError

out = Console()
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]


def operator_actor() -> Actor:
    return Actor(kind="operator", name=f"cli:{getpass.getuser()}")


def runtime():
    from feecenter.runtime import open_runtime

    return open_runtime()


def emit(as_json: bool, payload: dict, render=None) -> None:
    if as_json:
        print(json.dumps(payload, ensure_ascii=False, default=str))
    elif render:
        render(payload)
    else:
        for key, value in payload.items():
            out.print(f"{key}: {value}", markup=False, highlight=False)


@contextmanager
def refusals(as_json: bool):
    """Domain errors -> red lines (every problem of a refused file first) or one
    JSON error object, and exit code 1."""
    try:
        yield
    except FeeCenterError as exc:
        if as_json:
            print(json.dumps({"error": exc.to_dict()}, ensure_ascii=False, default=str))
        else:
            for line in exc.details.get("errors") or []:
                err.print(line, style="red", markup=False, highlight=False, soft_wrap=True)
            err.print(f"错误 / error: {exc.message}", style="red", markup=False, highlight=False,
                      soft_wrap=True)
        raise typer.Exit(1) from None
