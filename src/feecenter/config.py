"""Configuration from the environment, with documented defaults.

- FEECENTER_HOME: data folder of the embedded setup (default ~/.local/share/feecenter)
- FEECENTER_DATABASE_URL: database (default: SQLite file $FEECENTER_HOME/feecenter.db);
  e.g. postgresql+psycopg://user@127.0.0.1:5432/feecenter
- FEECENTER_MASTER_KEY: Fernet key that encrypts API secret keys at rest. If unset,
  the embedded setup creates one at $FEECENTER_HOME/master.key (mode 600).
- FEECENTER_SIGNATURE_WINDOW_S: accepted clock skew of signed requests (default 300)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    master_key: str | None
    signature_window_s: int = 300


def load_settings() -> Settings:
    home = Path(os.environ.get("FEECENTER_HOME") or Path.home() / ".local/share/feecenter")
    url = os.environ.get("FEECENTER_DATABASE_URL") or f"sqlite:///{home / 'feecenter.db'}"
    return Settings(
        home=home,
        database_url=url,
        master_key=os.environ.get("FEECENTER_MASTER_KEY"),
        signature_window_s=int(os.environ.get("FEECENTER_SIGNATURE_WINDOW_S", "300")),
    )


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
