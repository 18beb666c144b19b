"""Wiring for every entry point: settings -> engine (migrated) + clock + master key."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from feecenter.auth.service import configure_master_key
from feecenter.clock import Clock, SystemClock
from feecenter.config import Settings, load_settings, master_key
from feecenter.db.engine import make_engine
from feecenter.db.migrate import ensure_schema


@dataclass
class Runtime:
    engine: Engine
    clock: Clock
    settings: Settings = field(default_factory=load_settings)
    gateways: dict | None = None  # payment gateways by channel; None: from the environment

    def payment_gateways(self) -> dict:
        return payment_gateways() if self.gateways is None else self.gateways


def open_runtime(settings: Settings | None = None, clock: Clock | None = None) -> Runtime:
    settings = settings or load_settings()
    configure_master_key(master_key(settings))
    engine = make_engine(settings.database_url)
    ensure_schema(engine)
    return Runtime(engine=engine, clock=clock or SystemClock(), settings=settings)


def payment_gateways() -> dict:
    """The payment gateways the environment configures, by channel (RCH-1;
    docs/recharge.md): the wiring of the adapters in ``feecenter.gateways``."""
    from feecenter.gateways import configured

    return configured()
