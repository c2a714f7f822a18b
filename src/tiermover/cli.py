"""The `tiermover` command: serve the API, manage users from the shell."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from tiermover.config import Settings
from tiermover.garbage_collection import settle_after_start

app = typer.Typer(help="tiermover: a self-hosted task engine for data management.",
                  no_args_is_help=True)
console = Console(stderr=True)


def parse_size(text: str, what: str = "the limit") -> int:
    """'50M' -> 52428800 (K, M, G, T are powers of 1024)."""
    units = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "")
    try:
        value = int(float(number) * units[unit])
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a size like 50M") from None
    if value <= 0:
        raise typer.BadParameter(f"{what} must be positive")
    return value


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per node request would drown everything else.
    logging.getLogger("httpx").setLevel(logging.WARNING)


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
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="Run the embedded worker node.")] = True,
    worker_concurrency: Annotated[Optional[int], typer.Option(help="Executions the embedded node runs at once.")] = None,
) -> None:
    """Start the API server (migrations are applied first) with its embedded worker node."""
    import uvicorn

    from tiermover.api.app import create_app

    _configure_logging(log_level)
    settings = Settings(host=host, port=port, data_dir=data_dir, database_url=database_url)
    if worker_concurrency is not None:
        settings.embedded_workers = worker_concurrency
    prepare_database(settings)
    console.print(f"tiermover listening on http://{host}:{port}  (API docs: /api/v2/docs)")
    application = create_app(settings, embedded_node=worker)
    settle_after_start()
    # Nodes long-poll for work: do not wait for those requests to end on shutdown.
    uvicorn.run(application, host=host, port=port,
                log_level=log_level, access_log=False, timeout_graceful_shutdown=2)


@app.command("worker")
def run_worker(
    server: Annotated[str, typer.Option(help="URL of the tiermover server.")],
    api_key: Annotated[str, typer.Option(help="An API key with the scope nodes/work.", envvar="TIERMOVER_API_KEY")],
    name: Annotated[Optional[str], typer.Option(help="Node name (default: host-pid).")] = None,
    concurrency: Annotated[int, typer.Option(help="Executions run at once.")] = 1,
    fsync: Annotated[bool, typer.Option("--fsync/--no-fsync", help="fsync each file before it takes its final name.")] = True,
    bwlimit: Annotated[Optional[str], typer.Option(help="Bandwidth limit for this node, e.g. 50M or 2.5G (bytes/s).")] = None,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Run a worker node: claim executions from the server and carry them out."""
    import signal

    from tiermover.node.worker import NodeWorker

    _configure_logging(log_level)
    node = NodeWorker(server, api_key, name=name, concurrency=concurrency, fsync=fsync,
                      bandwidth_limit=parse_size(bwlimit) if bwlimit else None)
    signal.signal(signal.SIGTERM, lambda *_: node.stop())
    settle_after_start()
    try:
        node.run()
    except KeyboardInterrupt:
        node.stop()


@app.command()
def migrate(
    data_dir: Annotated[Path, typer.Option()] = Path("./tiermover-data"),
    database_url: Annotated[Optional[str], typer.Option()] = None,
) -> None:
    """Apply database migrations and exit."""
    prepare_database(Settings(data_dir=data_dir, database_url=database_url))


users_app = typer.Typer(help="Manage users from the shell (same rules as the API).")
keys_app = typer.Typer(help="Create API keys from the shell, e.g. for worker nodes.")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="api-keys")

DataDirOption = Annotated[Path, typer.Option(help="The server's data dir.")]
DatabaseOption = Annotated[Optional[str], typer.Option(help="postgresql://... (default: SQLite in the data dir).")]


def _session_scope(data_dir: Path, database_url: str | None):
    from tiermover.db.session import make_engine, make_session_factory

    settings = Settings(data_dir=data_dir, database_url=database_url)
    prepare_database(settings)
    return make_session_factory(make_engine(settings.database_url)).begin()


def _fail(error: Exception) -> None:
    from tiermover.service.errors import ValidationFailed

    messages = error.messages if isinstance(error, ValidationFailed) else [str(error)]
    for message in messages:
        console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=2)


@users_app.command("create")
def create_user(
    username: str,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    password: Annotated[Optional[str], typer.Option(help="Default: generated and printed once.")] = None,
    email: Annotated[Optional[str], typer.Option()] = None,
    data_dir: DataDirOption = Path("./tiermover-data"),
    database_url: DatabaseOption = None,
) -> None:
    """Create a user."""
    import secrets

    from tiermover.service import users as user_service
    from tiermover.service.errors import ServiceError

    generated = password is None
    password = password or secrets.token_urlsafe(18)
    try:
        with _session_scope(data_dir, database_url) as session:
            user = user_service.create_user(session, {
                "username": username, "password": password, "email": email, "is_admin": admin})
            user_id = user.id
    except ServiceError as error:
        _fail(error)
    console.print(f"Created user '{username}' (id {user_id}{', administrator' if admin else ''}).")
    if generated:
        typer.echo(password)


@keys_app.command("create")
def create_api_key(
    user: Annotated[str, typer.Option(help="Owner of the key (username).")],
    scope: Annotated[list[str], typer.Option(help="controller/action; repeat for several.")],
    name: Annotated[Optional[str], typer.Option()] = None,
    data_dir: DataDirOption = Path("./tiermover-data"),
    database_url: DatabaseOption = None,
) -> None:
    """Create an API key and print it (the only time it is shown whole)."""
    from sqlalchemy import select

    from tiermover.db.models import User
    from tiermover.service import users as user_service
    from tiermover.service.auth import Principal
    from tiermover.service.errors import ServiceError, ValidationFailed

    scopes = []
    for item in scope:
        controller, _, action = item.partition("/")
        if not controller or not action:
            _fail(ValidationFailed.on("scope", "invalid", f"'{item}' is not controller/action"))
        scopes.append({"controller": controller, "action": action})
    try:
        with _session_scope(data_dir, database_url) as session:
            owner = session.scalar(select(User).where(User.username == user))
            if owner is None:
                raise ValidationFailed.on("user", "not_found", f"'{user}' is not a user")
            principal = Principal(user_id=owner.id, username=owner.username, is_admin=owner.is_admin)
            _, key = user_service.create_api_key(session, principal,
                                                 {"name": name, "api_key_scopes": scopes})
    except ServiceError as error:
        _fail(error)
    typer.echo(key)


tape_app = typer.Typer(help="Tape libraries and cartridges (same rules as the API).")
app.add_typer(tape_app, name="tape")


@tape_app.command("create-library")
def create_tape_library(
    name: str,
    device: Annotated[Path, typer.Option(help="The directory that holds the cartridges (virtual).")],
    slots: Annotated[int, typer.Option(help="Storage slots, each filled with a blank cartridge.")],
    capacity: Annotated[str, typer.Option(help="Bytes per cartridge, e.g. 1.5T or 64M.")],
    drives: Annotated[int, typer.Option(help="Drives.")] = 1,
    io_slots: Annotated[int, typer.Option(help="Mail (import/export) slots.")] = 0,
    cartridge_type: Annotated[Optional[str], typer.Option(help="data_lto5 unless given.")] = None,
    barcode_prefix: Annotated[Optional[str], typer.Option(help="Start of generated barcodes.")] = None,
    data_dir: DataDirOption = Path("./tiermover-data"),
    database_url: DatabaseOption = None,
) -> None:
    """Create a virtual tape library: a directory of cartridge files, with its drives."""
    from tiermover.service.errors import ServiceError
    from tiermover.service.storage import tapes as tape_service

    device = device.absolute()
    values = {"name": name, "protocol": "virtual", "device": str(device),
              "storage_slots": slots, "io_slots": io_slots, "drives": drives,
              "cartridge_capacity": parse_size(capacity, "the capacity"), "cartridge_type": cartridge_type,
              "barcode_prefix": barcode_prefix}
    try:
        with _session_scope(data_dir, database_url) as session:
            library = tape_service.create_library(
                session, {k: v for k, v in values.items() if v is not None})
            barcodes = _library_barcodes(session, library.id)
            library_id = library.id
    except ServiceError as error:
        _fail(error)
    console.print(f"Created tape library '{name}' (id {library_id}) with {drives} drive(s) "
                  f"and {len(barcodes)} blank cartridge(s) in {device}.")
    typer.echo("\n".join(barcodes))


@tape_app.command("add-blank")
def add_blank_tapes(
    library: Annotated[str, typer.Argument(help="Library name or id.")],
    count: Annotated[int, typer.Option(help="How many cartridges.")] = 1,
    capacity: Annotated[Optional[str], typer.Option(help="Bytes each (default: the library's).")] = None,
    data_dir: DataDirOption = Path("./tiermover-data"),
    database_url: DatabaseOption = None,
) -> None:
    """Add blank cartridges to a virtual library; prints their barcodes."""
    from tiermover.service.errors import ServiceError
    from tiermover.service.storage import tape_inventory, tapes as tape_service

    try:
        with _session_scope(data_dir, database_url) as session:
            found = tape_service.get_library(session, library)
            tapes = tape_inventory.add_blank_tapes(
                session, found, count, parse_size(capacity, "the capacity") if capacity else None)
            barcodes = [tape.barcode for tape in tapes]
    except ServiceError as error:
        _fail(error)
    typer.echo("\n".join(barcodes))


@tape_app.command("list")
def list_tapes(
    library: Annotated[str, typer.Argument(help="Library name or id.")],
    data_dir: DataDirOption = Path("./tiermover-data"),
    database_url: DatabaseOption = None,
) -> None:
    """The library's cartridges: barcode, where, free of capacity, flags."""
    from tiermover.service.errors import ServiceError
    from tiermover.service.storage import tape_inventory, tapes as tape_service

    try:
        with _session_scope(data_dir, database_url) as session:
            found = tape_service.get_library(session, library)
            tape_inventory.refresh(session, found)
            rows = [(t.barcode, t.location or "", t.free, t.max,
                     ",".join(flag for flag in ("scratch", "mounted", "ejected", "locked",
                                                "write_protect") if getattr(t, flag)))
                    for t in tape_service.tapes_of(session, found)]
    except ServiceError as error:
        _fail(error)
    for barcode, location, free, capacity, flags in rows:
        typer.echo(f"{barcode}\t{location}\t{free}/{capacity}\t{flags}")


def _library_barcodes(session, library_id: int) -> list[str]:
    from sqlalchemy import select

    from tiermover.db.models import Tape

    return list(session.scalars(select(Tape.barcode).where(Tape.tape_library_id == library_id)
                                .order_by(Tape.barcode)))


if __name__ == "__main__":
    app()
