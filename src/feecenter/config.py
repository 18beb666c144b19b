"""Configuration from the environment, with documented defaults.

- FEECENTER_HOME: data folder of the embedded setup (default ~/.local/share/feecenter)
- FEECENTER_DATABASE_URL: database (default: SQLite file $FEECENTER_HOME/feecenter.db);
  e.g. postgresql+psycopg://user@127.0.0.1:5432/feecenter
- FEECENTER_MASTER_KEY: Fernet key that encrypts API secret keys at rest. If unset,
  the embedded setup creates one at $FEECENTER_HOME/master.key (mode 600).
- FEECENTER_SIGNATURE_WINDOW_S: accepted clock skew of signed requests (default 300)

PostgreSQL timeouts (db/engine.py; docs/decisions.md, "No wait without a timeout"),
each 0 for none:
- FEECENTER_PG_CONNECT_TIMEOUT_S: connecting, per address tried (default 10)
- FEECENTER_PG_STATEMENT_TIMEOUT_MS: the longest a statement may run, lock waits
  included (default 60000; migrations run without it)
- FEECENTER_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS: the longest a transaction may wait
  for its client between statements before the server ends the session and
  frees its locks (default 120000)
- FEECENTER_PG_TCP_USER_TIMEOUT_MS: the longest data sent may go unacknowledged,
  keepalive probes included, before the connection counts as lost (default 30000);
  keepalives probe an idle connection after 30 s, every 10 s, 3 times

Notifications (docs/notifications.md):
- FEECENTER_SMTP_HOST: SMTP server for email; unset = email disabled (email rows stay pending)
- FEECENTER_SMTP_PORT: default 25 (587 is usual with STARTTLS, 465 with FEECENTER_SMTP_SSL)
- FEECENTER_SMTP_USER, FEECENTER_SMTP_PASSWORD: login, if the server needs one
- FEECENTER_SMTP_FROM: From address (default "Fee Center <feecenter@localhost>")
- FEECENTER_SMTP_STARTTLS: 1/true to upgrade the connection with STARTTLS (default off)
- FEECENTER_SMTP_SSL: 1/true for implicit TLS (SMTPS, port 465) (default off)
- FEECENTER_SMTP_TIMEOUT_S: connect and command timeout (default 30)
- FEECENTER_SMS_SENDER: name of the registered SMS sender (default "log")
- FEECENTER_SMS_LOG: file the "log" SMS sender appends to (default $FEECENTER_HOME/sms.log)
- FEECENTER_NOTIFY_MAX_ATTEMPTS: sending attempts before an outbox row fails (default 5)

Bill exports (the download center, BIL-7; docs/bills.md):
- FEECENTER_EXPORT_DIR: where export files are written (default $FEECENTER_HOME/exports)
- FEECENTER_EXPORT_RETENTION_DAYS: how long a finished export is kept (default 7)

Invoices (docs/invoices.md):
- FEECENTER_INVOICE_SELLER_TAX_IDS: the selling entities' taxpayer IDs printed on
  invoices, "cn-cloud=9111…,cn-software=9144…" (unset: a placeholder of 18 zeros;
  read by ``invoices.documents.seller_tax_ids``)

Settlement (docs/settlement.md):
- FEECENTER_MONTHLY_FREEZE_DAY: the day of the next month (1-28, default 3) on which
  a monthly-freeze product's month is settled: its freezes released and its actual
  cost deducted (FRZ-5; read by ``monthly_freeze_day``)

Payment providers of online recharge: FEECENTER_WECHATPAY_* (read by
``gateways.wechatpay.WeChatPayConfig.from_env``; docs/recharge.md).

Corporate remittance: FEECENTER_REMITTANCE_PAYEE, _PREFIXES, _BANKS and
_RESTRICTED_KEYWORDS (read by ``remittances.service.Settings.from_env``, which
documents each with its default; docs/remittance.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    master_key: str | None
    signature_window_s: int = 300
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "Fee Center <feecenter@localhost>"
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_s: float = 30.0
    sms_sender: str = "log"
    sms_log_path: Path | None = None  # None: $FEECENTER_HOME/sms.log
    notify_max_attempts: int = 5
    export_dir: Path | None = None  # None: $FEECENTER_HOME/exports
    export_retention_days: int = 7
    public_url: str | None = None  # the address customers reach us at (absolute links)


def load_settings() -> Settings:
    home = Path(os.environ.get("FEECENTER_HOME") or Path.home() / ".local/share/feecenter")
    url = os.environ.get("FEECENTER_DATABASE_URL") or f"sqlite:///{home / 'feecenter.db'}"
    return Settings(
        home=home,
        database_url=url,
        master_key=os.environ.get("FEECENTER_MASTER_KEY"),
        signature_window_s=int(os.environ.get("FEECENTER_SIGNATURE_WINDOW_S", "300")),
        smtp_host=os.environ.get("FEECENTER_SMTP_HOST") or None,
        smtp_port=int(os.environ.get("FEECENTER_SMTP_PORT") or "25"),
        smtp_user=os.environ.get("FEECENTER_SMTP_USER") or None,
        smtp_password=os.environ.get("FEECENTER_SMTP_PASSWORD") or None,
        smtp_from=os.environ.get("FEECENTER_SMTP_FROM") or "Fee Center <feecenter@localhost>",
        smtp_starttls=_flag(os.environ.get("FEECENTER_SMTP_STARTTLS")),
        smtp_ssl=_flag(os.environ.get("FEECENTER_SMTP_SSL")),
        smtp_timeout_s=float(os.environ.get("FEECENTER_SMTP_TIMEOUT_S") or "30"),
        sms_sender=os.environ.get("FEECENTER_SMS_SENDER") or "log",
        sms_log_path=Path(os.environ["FEECENTER_SMS_LOG"]) if os.environ.get("FEECENTER_SMS_LOG")
        else None,
        notify_max_attempts=int(os.environ.get("FEECENTER_NOTIFY_MAX_ATTEMPTS") or "5"),
        export_dir=Path(os.environ["FEECENTER_EXPORT_DIR"]) if os.environ.get(
            "FEECENTER_EXPORT_DIR") else None,
        export_retention_days=int(os.environ.get("FEECENTER_EXPORT_RETENTION_DAYS") or "7"),
        public_url=(os.environ.get("FEECENTER_PUBLIC_URL") or "").rstrip("/") or None,
    )


@dataclass(frozen=True)
class PostgresTimeouts:
    """How long a PostgreSQL connection may wait (0: no limit). The defaults are far
    above what any statement or unit of work here takes (a payment: milliseconds;
    the longest bulk statements: seconds) and far below "forever"."""

    connect_s: int = 10
    statement_ms: int = 60_000
    idle_in_transaction_ms: int = 120_000
    tcp_user_ms: int = 30_000


def postgres_timeouts() -> PostgresTimeouts:
    """The timeouts from the environment (FEECENTER_PG_*), defaults for those unset."""
    default = PostgresTimeouts()

    def read(name: str, fallback: int) -> int:
        text = (os.environ.get(name) or "").strip()
        if not text:
            return fallback
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"{name} must be a whole number (0 for no limit), not {text!r}")
        return int(text)

    return PostgresTimeouts(
        connect_s=read("FEECENTER_PG_CONNECT_TIMEOUT_S", default.connect_s),
        statement_ms=read("FEECENTER_PG_STATEMENT_TIMEOUT_MS", default.statement_ms),
        idle_in_transaction_ms=read("FEECENTER_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS",
                                    default.idle_in_transaction_ms),
        tcp_user_ms=read("FEECENTER_PG_TCP_USER_TIMEOUT_MS", default.tcp_user_ms),
    )


DEFAULT_MONTHLY_FREEZE_DAY = 3


def monthly_freeze_day() -> int:
    """FRZ-5: the settlement day of the next month (1-28, default 3) from
    FEECENTER_MONTHLY_FREEZE_DAY; anything else is refused naming the variable."""
    text = (os.environ.get("FEECENTER_MONTHLY_FREEZE_DAY") or "").strip()
    if not text:
        return DEFAULT_MONTHLY_FREEZE_DAY
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 28):
        raise ValueError(f"FEECENTER_MONTHLY_FREEZE_DAY must be a day 1-28, not {text!r}")
    return int(text)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def master_key(settings: Settings) -> str:
    """The key that encrypts secret keys: from the environment or the home key file."""
    if settings.master_key:
        return settings.master_key
    from cryptography.fernet import Fernet

    path = settings.home / "master.key"
    if not path.exists():
        settings.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode())
    return path.read_text().strip()
