"""What every CLI module shares: consoles, the --json option and ``flag`` (boolean
options shown as flags), the operator actor, the runtime, and the scripting
contract (one JSON object with --json; a domain refusal is a red line or a
JSON error object, and exit code 1).

Imported by ``feecenter --help``: Typer, Rich and the standard library only at
the top; the domain modules a helper needs are imported when it runs.
"""

from __future__ import annotations

import getpass
import json
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:  # annotations only: importing them at startup would load the domain
    from feecenter.accounts.permissions import Actor
    from feecenter.runtime import Runtime

out = Console()
err = Console(stderr=True)


def flag(*declarations: str, help: str | None = None):  # noqa: A002 (typer.Option's name)
    """A boolean option shown as a flag: ``--json``, not ``--json <bool>``.

    Typer 0.29 shows every option's type in the help, booleans too, which reads as
    if the flag took a value; an empty metavar leaves the type column blank."""
    return typer.Option(*declarations, help=help, metavar="")


JsonOpt = Annotated[bool, flag("--json", help="print one JSON object")]


def operator_actor() -> Actor:
    from feecenter.accounts.permissions import Actor

    return Actor(kind="operator", name=f"cli:{getpass.getuser()}")


def runtime() -> Runtime:
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
    from feecenter.errors import FeeCenterError

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
