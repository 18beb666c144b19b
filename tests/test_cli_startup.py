"""The CLI starts fast and shows its flags as flags (issue #17 item 11).

``feecenter --help`` and a command's ``--help`` load Typer and Rich only: the
commands import the services they call inside their functions. Checked by
the modules a real ``--help`` run leaves loaded, not by timing it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from feecenter.cli import bills
from feecenter.cli.main import app

# what a command loads when it runs, never for --help (Typer itself loads pydantic)
HEAVY = ("sqlalchemy", "alembic", "psycopg", "fastapi", "starlette", "uvicorn", "msgspec",
         "yaml", "cryptography", "stdnum")

LOADED = """
import json, sys
from feecenter.cli.main import main
sys.argv = ["feecenter", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("args", [["--help"], ["balance", "--help"], ["orders", "list", "--help"],
                                  ["catalog", "show", "--help"], ["jobs", "run", "--help"],
                                  ["usage", "import", "--help"], ["demo", "--help"]])
def test_help_loads_no_database_web_or_domain_code(args):
    done = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.splitlines()[-1])
    assert "Usage" in done.stdout
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []
    assert [m for m in modules if m.startswith("feecenter.")
            and not m.startswith("feecenter.cli")] == []


def _commands(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


def test_boolean_options_show_as_flags():
    runner = CliRunner()
    commands = list(_commands(typer.main.get_command(app)))
    assert ("balance",) in commands and ("orders", "deliver") in commands
    for command in commands:
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (command, result.output)
        # only Typer's own --help may carry a type; every flag of ours shows none
        assert [line for line in result.output.splitlines()
                if "<bool>" in line and "--help" not in line] == [], command
    balance = runner.invoke(app, ["balance", "--help"], env={"COLUMNS": "200"}).output
    assert re.search(r"--json\s+print one JSON object", balance)
    demo = runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "200"}).output
    assert re.search(r"--serve\s+--no-serve\s+\[default: serve\]", demo)


def test_flags_still_take_no_value():
    result = CliRunner().invoke(app, ["balance", "--uin", "1", "--json=yes"])
    assert result.exit_code == 2 and "does not take a value" in result.output


def test_bills_page_limit_is_settlements():
    from feecenter.settlement.service import MAX_LIMIT

    assert bills.MAX_LINES == MAX_LIMIT


def test_serve_refuses_to_start_with_a_payment_configuration_that_cannot_work(monkeypatch):
    """A WeChat Pay setting that cannot work stops `feecenter serve` before it listens,
    naming the variable, instead of failing every recharge request."""
    import feecenter.cli.main as cli_main

    served = []
    monkeypatch.setattr(cli_main, "serve_app", lambda *args, **kwargs: served.append(args))
    monkeypatch.setenv("FEECENTER_WECHATPAY_MCHID", "1900000109")
    result = CliRunner().invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 1 and served == []
    assert "FEECENTER_WECHATPAY_" in result.output
