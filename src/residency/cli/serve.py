"""`residency serve`: run the S3 gateway under granian.

With no config file it starts the embedded default: SQLite and local directories standing for
cloud regions under `./residency-data`, the `preset:default` policy, and a `default` tenant
whose first access key is printed once.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from residency.cli.output import console, fail

if TYPE_CHECKING:
    import socket

    from residency.config import Settings
    from residency.ops.admin import AdminServer


class LogFormat(StrEnum):
    """`--log-format`: how log records are written."""

    text = "text"
    json = "json"


DEFAULT_TENANT = "default"
DEFAULT_PRINCIPAL = "admin"


@dataclass(frozen=True)
class Bootstrap:
    """What the first start of the embedded default created (the secret is shown once)."""

    tenant: str
    access_key_id: str
    secret: str


def resolve_settings(
    config: Path | None,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    data_dir: Path | None = None,
    admin_port: int | None = None,
    admin_host: str | None = None,
    log_format: str | None = None,
) -> tuple[Settings, bool]:
    """Settings from the file/env/flags; (settings, embedded) where embedded means defaults."""
    from residency.config import ConfigError, load_settings
    from residency.defaults import default_locations

    if config is not None and not config.exists():
        fail(f"{config}: file not found")
    try:
        settings = load_settings(
            config,
            host=host,
            port=port,
            workers=workers,
            data_dir=data_dir,
            admin_port=admin_port,
            admin_host=admin_host,
            log_format=log_format,
        )
    except ConfigError as exc:
        fail(str(exc))
    settings = settings.model_copy(update={"data_dir": settings.data_dir.expanduser().resolve()})
    embedded = not settings.locations
    if embedded:
        settings = settings.model_copy(update={"locations": default_locations(settings.data_dir)})
    return settings, embedded


def check_settings(settings: Settings) -> None:
    """Fail with one readable line if a location, the policy or an access policy is unusable."""
    from residency.access import AccessError
    from residency.catalog import CatalogError, load_catalog
    from residency.gateway.state import AccessControl
    from residency.policy import PolicyError, load_policy
    from residency.storage import StorageError, open_locations

    try:
        open_locations(settings, load_catalog())
    except (CatalogError, StorageError, ValueError) as exc:
        fail(f"location config: {exc}")
    try:
        load_policy(str(settings.policy) if settings.policy else "preset:default")
    except PolicyError as exc:
        fail(f"policy: {exc}")
    try:
        AccessControl.load(settings)
    except AccessError as exc:
        fail(exc.message)


def check_port_free(host: str, port: int, *, what: str = "port", flag: str = "--port") -> None:
    """Fail with one line if something already listens on (host, port).

    Checked before granian starts, so a second server never starts beside the first one and
    leaves clients talking to either at random. SO_REUSEADDR only tolerates connections
    still in TIME_WAIT from a previous run, never a live listener.
    """
    import socket

    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"--host {host}: {exc.strerror}")
    family, kind, proto, _, address = addresses[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            fail(_listen_error(host, port, exc, what=what, flag=flag))


def _listen_error(host: str, port: int, exc: OSError, *, what: str, flag: str) -> str:
    import errno

    if exc.errno == errno.EADDRINUSE:
        return f"{what} {port} on {host} is already in use; stop that server or pick {flag}"
    return f"cannot listen on {host} {what} {port}: {exc.strerror or exc}"


def bind_admin_port(settings: Settings) -> socket.socket | None:
    """The admin server's listening socket, bound now (one line and exit 2 if it cannot be).

    Bound before anything else starts and kept, so the port checked is the port served.
    """
    import socket

    from residency.ops.admin import bind

    if settings.admin_port is None:
        return None
    host = settings.admin_address
    if settings.admin_port == settings.port and _overlap(host, settings.host):
        fail(f"--admin-port {settings.admin_port} is the S3 port; pick another one")
    try:
        return bind(host, settings.admin_port)
    except socket.gaierror as exc:
        fail(f"--admin-host {host}: {exc.strerror}")
    except OSError as exc:
        fail(_listen_error(host, settings.admin_port, exc, what="admin port", flag="--admin-port"))


_EVERY_ADDRESS = ("", "0.0.0.0", "::")


def _overlap(first: str, second: str) -> bool:
    """Whether listening on both addresses at one port would clash (a wildcard takes all)."""
    return first == second or first in _EVERY_ADDRESS or second in _EVERY_ADDRESS


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start_admin(settings: Settings, sock: socket.socket) -> AdminServer:
    """Empty `<data_dir>/metrics`, point the workers' counters at it, serve /metrics there.

    `PROMETHEUS_MULTIPROC_DIR` is set before granian starts (its workers inherit it) and
    before anything here creates a metric. Call it holding the data dir's `serve.lock`.
    """
    from residency.gateway.telemetry import MULTIPROC_ENV
    from residency.ops.admin import Admin, AdminServer, prepare_metrics_dir

    try:
        metrics_dir = prepare_metrics_dir(settings.data_dir)
    except OSError as exc:
        fail(f"{settings.data_dir}: cannot prepare the metrics directory ({exc.strerror or exc})")
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    server = AdminServer(Admin(settings, metrics_dir), sock)
    server.start()
    return server


LOCK_FILENAME = "serve.lock"
_held_locks: list[int] = []  # lock file descriptors, open for the life of the process


def hold_data_dir(data_dir: Path) -> None:
    """Take `<data_dir>/serve.lock` for as long as this process lives; one line if held.

    An exclusive `flock`: the kernel lets go when the server exits, however it exits, so
    there is no stale lock to clean up. The file names the holder's pid for the message.
    Granian's workers inherit the descriptor, so the lock holds while any of them runs.
    """
    if sys.platform == "win32":  # no flock; one server per data dir is then up to the operator
        return
    import fcntl

    path = data_dir / LOCK_FILENAME
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        fail(f"{path}: cannot open the server lock ({exc.strerror or exc})")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        fail(
            f"{data_dir} is in use by another residency serve (pid {holder}); "
            "stop it or pass another --data-dir"
        )
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    _held_locks.append(fd)


def check_signing_key(settings: Settings) -> None:
    """The audit signing key the server checkpoints with (created on first start)."""
    from residency.audit import SigningKeyError, load_or_create_signing_key

    try:
        load_or_create_signing_key(settings.data_dir)
    except SigningKeyError as exc:
        fail(str(exc))


async def bootstrap(settings: Settings, embedded: bool) -> Bootstrap | None:
    """Migrate the database; in embedded mode create the default tenant and key once."""
    from residency.audit import append as audit_append
    from residency.audit import configure_checkpoints
    from residency.audit.kinds import ADMIN
    from residency.meta.db import Database
    from residency.meta.repo import tenants

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    try:
        await db.migrate()
        configure_checkpoints(settings, db)
        if not embedded:
            return None
        async with db.session() as session:
            if await tenants.find_tenant(session, DEFAULT_TENANT) is not None:
                return None
            tenant = await tenants.create_tenant(session, DEFAULT_TENANT)
            principal = await tenants.create_principal(session, tenant, DEFAULT_PRINCIPAL)
            key = await tenants.create_access_key(session, principal)
            await audit_append(
                session,
                ADMIN,
                actor="residency serve",
                tenant=tenant.name,
                target=f"tenant/{tenant.name}",
                detail={
                    "action": "bootstrap",
                    "principal": principal.name,
                    "access_key_id": key.access_key_id,
                },
            )
            return Bootstrap(tenant.name, key.access_key_id, key.secret)
    finally:
        await db.dispose()


def _url(host: str, port: int, tls: bool = False) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def endpoint_url(settings: Settings, tls: bool = False) -> str:
    return _url(settings.host, settings.port, tls)


def admin_url(settings: Settings) -> str:
    """The admin server's base URL (plain HTTP; `admin_port` must be set)."""
    assert settings.admin_port is not None
    return _url(settings.admin_address, settings.admin_port)


def admin_banner(settings: Settings) -> str:
    """The start-up line saying where the admin server answers and whom it is open to."""
    assert settings.admin_port is not None
    admin = admin_url(settings)
    host = settings.admin_address
    shown = f"[{host}]" if ":" in host else host or "0.0.0.0"
    if _is_loopback(host):
        reach = "this machine only; --admin-host exposes it"
    elif host in _EVERY_ADDRESS:
        reach = "every address, no authentication"
    else:
        reach = "no authentication"
    return (
        f"Admin: {admin}/metrics {admin}/livez {admin}/readyz "
        f"(listening on {shown}:{settings.admin_port}, {reach})"
    )


def print_bootstrap(created: Bootstrap, endpoint: str, region: str) -> None:
    out = console.print
    out(
        f"Created tenant [bold]{created.tenant}[/] with an access key. "
        "[bold yellow]The secret is shown only now: store it.[/]",
        highlight=False,
    )
    out(f"  access key id:     {created.access_key_id}", highlight=False)
    out(f"  secret access key: {created.secret}", highlight=False, soft_wrap=True)
    out("Try it with the AWS CLI:", highlight=False)
    out(
        f"  AWS_ACCESS_KEY_ID={created.access_key_id} "
        f"AWS_SECRET_ACCESS_KEY='{created.secret}' AWS_DEFAULT_REGION={region} "
        f"aws --endpoint-url {endpoint} s3 ls",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    out(
        "Say what each object is (class, subject), or give the bucket defaults; unclassified "
        "data is refused:",
        highlight=False,
    )
    out(
        f"  aws --endpoint-url {endpoint} s3 cp report.pdf s3://my-bucket/ "
        "--metadata residency-class=personal.health,residency-subject=US",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    out("or add this to ~/.config/rclone/rclone.conf:", highlight=False)
    for line in (
        "  [residency]",
        "  type = s3",
        "  provider = Other",
        f"  access_key_id = {created.access_key_id}",
        f"  secret_access_key = {created.secret}",
        f"  endpoint = {endpoint}",
        f"  region = {region}",
    ):
        out(line, highlight=False, soft_wrap=True, markup=False)


def run_granian(settings: Settings, tls: tuple[Path, Path] | None = None) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.log import LogLevels

    from residency.gateway.asgi import SETTINGS_ENV

    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    level = settings.log_level.lower()
    log_config = None
    if settings.log_format == "json":
        from residency.gateway.jsonlog import granian_log_config

        log_config = granian_log_config()
    Granian(
        target="residency.gateway.asgi:create",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        # S3 clients speak HTTP/1.1 and never open websockets; uvloop is cheaper per request
        # than asyncio's default loop.
        http=HTTPModes.http1,
        websockets=False,
        loop=Loops.uvloop if sys.platform != "win32" else Loops.auto,
        log_level=LogLevels(level) if level in LogLevels.__members__ else LogLevels.info,
        log_access=False,
        log_dictconfig=log_config,
        ssl_cert=tls[0] if tls else None,
        ssl_key=tls[1] if tls else None,
    ).serve()


def serve(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="residency.yaml (default: ./residency.yaml if present)."
    ),
    host: str | None = typer.Option(None, "--host", help="Address to listen on [127.0.0.1]."),
    port: int | None = typer.Option(None, "--port", "-p", help="Port to listen on [9000]."),
    workers: int | None = typer.Option(
        None, "--workers", "-w", min=1, help="Worker processes [1]."
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Where the database and local locations live [./residency-data]."
    ),
    tls_cert: Path | None = typer.Option(
        None, "--tls-cert", help="PEM certificate: serve HTTPS (with --tls-key)."
    ),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="PEM private key for --tls-cert."),
    admin_port: int | None = typer.Option(
        None,
        "--admin-port",
        min=1,
        max=65535,
        help="Also serve Prometheus /metrics, /livez and /readyz on this port (off by default).",
    ),
    admin_host: str | None = typer.Option(
        None,
        "--admin-host",
        help="Address for --admin-port [127.0.0.1]. The admin server has no authentication: "
        "it stays on loopback even when --host exposes the S3 port, unless this names another "
        "address.",
    ),
    log_format: LogFormat | None = typer.Option(
        None,
        "--log-format",
        case_sensitive=False,
        help="text (the default): one readable line per log record; json: one JSON object per "
        "line, with the request id.",
    ),
) -> None:
    """Serve the S3-compatible gateway (embedded default setup when there is no config)."""
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together")
    tls = (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    for path in tls or ():
        if not path.is_file():
            fail(f"{path}: file not found")
    settings, embedded = resolve_settings(
        config,
        host=host,
        port=port,
        workers=workers,
        data_dir=data_dir,
        admin_port=admin_port,
        admin_host=admin_host,
        log_format=log_format.value if log_format is not None else None,
    )
    check_settings(settings)
    check_port_free(settings.host, settings.port)
    admin_sock = bind_admin_port(settings)
    hold_data_dir(settings.data_dir)
    check_signing_key(settings)
    if settings.log_format == "json":  # this process's own records (the admin server's)
        import logging

        from residency.gateway.jsonlog import use_json

        use_json(logging.getLogger("residency"))
    # The admin server answers from here on: /livez at once, /readyz 503 until every worker
    # has started (a long database migration included).
    admin = start_admin(settings, admin_sock) if admin_sock is not None else None
    try:
        run(settings, embedded, tls)
    finally:
        if admin is not None:
            admin.stop()


def run(settings: Settings, embedded: bool, tls: tuple[Path, Path] | None) -> None:
    """Bootstrap the database, say where the server is, serve until stopped."""
    import asyncio

    try:
        created = asyncio.run(bootstrap(settings, embedded))
    except Exception as exc:  # a database URL that does not work, a read-only data dir, ...
        fail(f"cannot open the metadata database {settings.db_url}: {exc}")
    endpoint = endpoint_url(settings, tls is not None)
    if embedded:
        console.print(
            f"No config file: embedded default in {settings.data_dir} (SQLite, policy "
            f"preset:default, locations {', '.join(loc.name for loc in settings.locations)}).",
            highlight=False,
            soft_wrap=True,
        )
    if created is not None:
        print_bootstrap(created, endpoint, settings.region_name)
    console.print(f"S3 endpoint: {endpoint}", highlight=False, soft_wrap=True)
    if settings.admin_port is not None:
        console.print(admin_banner(settings), highlight=False, soft_wrap=True)
    sys.stdout.flush()
    run_granian(settings, tls)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("serve")(serve)
