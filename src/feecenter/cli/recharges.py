"""``feecenter recharge …``: online recharges (RCH) for operators — create one (its QR
code_url), show, list, ask the provider (``query``: credits a paid one whose
notification went missing), ``sync`` (what the hourly job does: recover and
expire); and ``feecenter sandbox-pay``, the sandbox payment provider.

Same contract as the rest of the CLI (docs/cli.md): ``--json`` prints exactly one
JSON object (``present.recharges.recharge_json``); exit 0 done, 1 refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feecenter.cli.common import JsonOpt, flag
from feecenter.cli.common import emit as _emit
from feecenter.cli.common import operator_actor as _actor
from feecenter.cli.common import refusals as _refusals
from feecenter.cli.common import runtime as _runtime

recharge_app = typer.Typer(help="Online recharge (RCH) / 在线充值", no_args_is_help=True)

IdArg = Annotated[int, typer.Argument(help="recharge id", min=1)]


@recharge_app.command("create")
def create(
    uin: Annotated[int, typer.Option(help="the account to recharge (UIN)")],
    amount: Annotated[str, typer.Option(help="yuan, e.g. 100.00 (0.01-9999999.00)")],
    channel: Annotated[str, typer.Option(help="wechat | qq | netbank")] = "wechat",
    payer: Annotated[str | None, typer.Option(help="payer identity (default: the operator)")] = None,
    international_card: Annotated[bool, flag("--international-card",
                                             help="the payer pays with a card issued abroad")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a recharge at the provider; prints its code_url (the QR code's content)."""
    from feecenter.money import parse_yuan
    from feecenter.present.recharges import recharge_json
    from feecenter.recharges import service

    with _refusals(as_json):
        rt = _runtime()
        new = service.NewRecharge(amount=parse_yuan(amount, "amount"), channel=channel,
                                  payer=payer, intl_card=international_card)
        row = service.create(rt.engine, rt.clock, _actor(), uin, new, rt.gateways)
    _emit(as_json, recharge_json(row))


@recharge_app.command("show")
def show(recharge_id: IdArg, as_json: JsonOpt = False) -> None:
    """One recharge and its state."""
    from feecenter.present.recharges import recharge_json
    from feecenter.recharges import service

    with _refusals(as_json):
        rt = _runtime()
        with rt.engine.connect() as conn:
            row = service.get(conn, _actor(), recharge_id)
    _emit(as_json, recharge_json(row))


@recharge_app.command("list")
def list_(uin: Annotated[int, typer.Option(help="the account (UIN)")],
          state: Annotated[str | None, typer.Option(help="pending | paid | failed | closed")] = None,
          limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
          as_json: JsonOpt = False) -> None:
    """An account's recharges, newest first."""
    from feecenter.present.recharges import recharge_json
    from feecenter.recharges import service

    with _refusals(as_json):
        rt = _runtime()
        with rt.engine.connect() as conn:
            page = service.list_recharges(conn, _actor(), uin, state=state, limit=limit)
    _emit(as_json, {"uin": uin, "total": page["total"],
                    "items": [recharge_json(r) for r in page["items"]]})


@recharge_app.command("query")
def query(recharge_id: IdArg, as_json: JsonOpt = False) -> None:
    """Ask the provider about a recharge and apply the answer (credit a paid one once)."""
    from feecenter.present.recharges import recharge_json
    from feecenter.recharges import service

    with _refusals(as_json):
        rt = _runtime()
        row = service.query(rt.engine, rt.clock, _actor(), recharge_id, rt.gateways)
    _emit(as_json, recharge_json(row))


@recharge_app.command("sync")
def sync(as_json: JsonOpt = False) -> None:
    """Query pending recharges (recover missed notifications) and close expired ones."""
    from feecenter.recharges import service

    with _refusals(as_json):
        rt = _runtime()
        counts = service.sync_pending(rt.engine, rt.clock, rt.gateways)
    _emit(as_json, counts)


def sandbox_pay_command(
    port: Annotated[int, typer.Option(help="port to listen on")] = 8090,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    keys: Annotated[Path | None, typer.Option(
        help="folder of the sandbox's keys (made if missing; default $FEECENTER_HOME/sandbox-pay)")] = None,
    notify_url: Annotated[str, typer.Option(
        help="where the merchant receives notifications")] = "http://127.0.0.1:8000/api/v1/recharges/notify/wechat",
    public_key_mode: Annotated[bool, flag("--public-key-mode", help=(
        "announce the WeChat Pay public key id (PUB_KEY_ID_…) instead of a platform "
        "certificate serial / 微信支付公钥模式"))] = False,
) -> None:
    """Run the sandbox payment provider (WeChat Pay API v3 wire protocol)."""
    import uvicorn

    from feecenter.config import load_settings
    from feecenter.sandbox import keys as sandbox_keys
    from feecenter.sandbox.app import create_app

    folder = keys or load_settings().home / "sandbox-pay"
    loaded = sandbox_keys.load_or_create(folder)
    typer.echo("# Point Fee Center at this sandbox / 商户配置:")
    for name, value in sandbox_keys.merchant_env(loaded, f"http://{host}:{port}", notify_url,
                                                 public_key_mode).items():
        typer.echo(f"export {name}={value}")
    uvicorn.run(create_app(loaded, public_key_mode=public_key_mode), host=host, port=port,
                log_level="warning")
