"""Server settings: command-line options first, then TIERMOVER_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from tiermover.db.session import normalize_database_url, sqlite_url_for


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"TIERMOVER_{name}", default)


@dataclass
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(_env("DATA_DIR", "./tiermover-data")))
    database_url: str | None = field(default_factory=lambda: _env("DATABASE_URL"))
    host: str = field(default_factory=lambda: _env("HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(_env("PORT", "8080")))
    admin_user: str = field(default_factory=lambda: _env("ADMIN_USER", "admin"))
    admin_password: str | None = field(default_factory=lambda: _env("ADMIN_PASSWORD"))
    session_lifetime: timedelta = field(
        default_factory=lambda: timedelta(seconds=int(_env("SESSION_LIFETIME_SECONDS", "86400")))
    )

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        if not self.database_url:
            self.database_url = sqlite_url_for(self.data_dir)
        self.database_url = normalize_database_url(self.database_url)

    @property
    def containers_root(self) -> Path:
        """Where containers (the primary areas tiermover manages) keep their files."""
        return self.data_dir / "containers"
