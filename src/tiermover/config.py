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

    lease: timedelta = field(
        default_factory=lambda: timedelta(seconds=float(_env("LEASE_SECONDS", "30")))
    )
    smtp_host: str | None = field(default_factory=lambda: _env("SMTP_HOST"))
    smtp_port: int = field(default_factory=lambda: int(_env("SMTP_PORT", "25")))
    smtp_sender: str = field(default_factory=lambda: _env("SMTP_FROM", "tiermover@localhost"))
    smtp_username: str | None = field(default_factory=lambda: _env("SMTP_USERNAME"))
    smtp_password: str | None = field(default_factory=lambda: _env("SMTP_PASSWORD"))
    smtp_starttls: bool = field(default_factory=lambda: _env("SMTP_STARTTLS", "0") in ("1", "true"))
    # The node inside `tiermover serve` (0 disables it).
    embedded_workers: int = field(default_factory=lambda: int(_env("EMBEDDED_WORKERS", "2")))
    # fsync each file before it takes its final name: slower, but a power cut never
    # leaves an empty file under a final name.
    fsync: bool = field(default_factory=lambda: _env("FSYNC", "1") in ("1", "true"))

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        if not self.database_url:
            self.database_url = sqlite_url_for(self.data_dir)
        self.database_url = normalize_database_url(self.database_url)

    @property
    def containers_root(self) -> Path:
        """Where containers (the primary areas tiermover manages) keep their files."""
        return self.data_dir / "containers"
