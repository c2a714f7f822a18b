"""The `tiermover` command: serve the API, manage users from the shell."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from tiermover.config import Settings

app = typer.Typer(help="tiermover: a self-hosted task engine for data management.",
                  no_args_is_help=True)
console = Console(stderr=True)


def prepare_database(settings: Settings) -> None:
    """Apply migrations and create the first administrator if needed."""
    from tiermover.db.migrate import upgrade_to_head
    from tiermover.db.session import make_engine, make_session_factory
    from tiermover.service.users import ensure_admin

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        upgrade_to_head(engine)
        with make_session_factory(engine).begin() as session:
            generated = ensure_admin(session, settings.admin_user, settings.admin_password,
                                     settings.data_dir)
    finally:
        engine.dispose()
    if generated:
        console.print(
            f"[bold]Created administrator '{settings.admin_user}' with password:[/bold] {generated}\n"
            f"(also saved in {settings.data_dir / 'admin-password'}, readable by you only)"
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    data_dir: Annotated[Path, typer.Option(help="Where the database, containers and secrets live.")] = Path("./tiermover-data"),
    database_url: Annotated[Optional[str], typer.Option(help="postgresql://... (default: SQLite in the data dir).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Start the API server (migrations are applied first)."""
    import uvicorn

    from tiermover.api.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(host=host, port=port, data_dir=data_dir, database_url=database_url)
    prepare_database(settings)
    console.print(f"tiermover listening on http://{host}:{port}  (API docs: /api/v2/docs)")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False)


@app.command()
def migrate(
    data_dir: Annotated[Path, typer.Option()] = Path("./tiermover-data"),
    database_url: Annotated[Optional[str], typer.Option()] = None,
) -> None:
    """Apply database migrations and exit."""
    prepare_database(Settings(data_dir=data_dir, database_url=database_url))


if __name__ == "__main__":
    app()
