"""Wiring for every entry point: settings -> engine (migrated) + clock + master key
+ the payment gateways the environment configures (built once, here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from feecenter.auth.service import configure_master_key
from feecenter.clock import Clock, SystemClock
from feecenter.config import Settings, load_settings, master_key
from feecenter.db.engine import make_engine
from feecenter.db.migrate import ensure_schema

_opened_gateways: dict = {}  # those of the runtime this process opened, for the jobs


@dataclass
class Runtime:
    engine: Engine
    clock: Clock
    settings: Settings = field(default_factory=load_settings)
    gateways: dict = field(default_factory=dict)  # payment gateways by channel (RCH-1)


def open_runtime(settings: Settings | None = None, clock: Clock | None = None) -> Runtime:
    """Raises ConfigurationError (naming the variable) for payment settings that
    cannot work, before anything is served."""
    from feecenter.gateways import configured

    gateways = configured()
    _check_domain_settings()
    settings = settings or load_settings()
    configure_master_key(master_key(settings))
    engine = make_engine(settings.database_url)
    ensure_schema(engine)
    _opened_gateways.clear()
    _opened_gateways.update(gateways)
    return Runtime(engine=engine, clock=clock or SystemClock(), settings=settings,
                   gateways=gateways)


def _check_domain_settings() -> None:
    """Settings the domains read from the environment when they act, checked once before
    anything is served, so a wrong one stops the start (naming the variable) rather
    than failing requests: the withdrawal windows (WDR-2) and the monthly freeze's
    settlement day (FRZ-5)."""
    from feecenter.config import monthly_freeze_day
    from feecenter.errors import ConfigurationError
    from feecenter.withdrawals.service import windows_from_env

    windows_from_env()
    try:
        monthly_freeze_day()
    except ValueError as exc:
        raise ConfigurationError("FEECENTER_MONTHLY_FREEZE_DAY 设置有误：须为 1–28 的日期",
                                 str(exc)) from None


def payment_gateways() -> dict:
    """The payment gateways of the runtime this process opened, by channel ({} before
    one is opened): how the recharges job, which gets no runtime, reaches them."""
    return dict(_opened_gateways)
