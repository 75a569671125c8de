"""CLI: `residency audit verify | export | tail | checkpoint | checkpoints | public-key`: proof."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import typer

from residency.cli.common import cli_settings, on_database
from residency.cli.output import EXIT_FINDINGS, JSON_OPTION, console, err_console, fail, print_json

if TYPE_CHECKING:
    from residency.config import Settings
    from residency.meta import Database

T = TypeVar("T")

audit_app = typer.Typer(
    help="Verify, export and sign the tamper-evident audit log.",
    no_args_is_help=True,
)

CONFIG_OPTION = typer.Option(
    None, "--config", "-c", help="Settings file (default: ./residency.yaml if present)."
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(audit_app, name="audit")


def _with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` against the migrated database; expected failures become one error line.

    Every audit command needs an existing log: none where the settings point is an error
    naming the path (exit 2), never an empty database that verifies as "ok: 0 entries".
    """
    from sqlalchemy.exc import SQLAlchemyError

    from residency.audit import AuditError

    try:
        return on_database(settings, work, create=False)
    except AuditError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        fail(f"database {_safe_url(settings)}: {reason}")


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.db_url).render_as_string(hide_password=True)


def _public_key(settings: Settings, path: Path | None) -> Any:
    from residency.audit import SigningKeyError, load_public_key, load_signing_key

    try:
        if path is not None:
            return load_public_key(path)
        key = load_signing_key(settings.data_dir)
    except SigningKeyError as exc:
        fail(str(exc))
    return None if key is None else key.public_key()


@audit_app.command("verify")
def verify_cmd(
    config: Path | None = CONFIG_OPTION,
    public_key: Path | None = typer.Option(
        None,
        "--public-key",
        help="PEM public key to check checkpoint signatures with "
        "(default: the signing key in the data directory).",
    ),
    expect: list[str] = typer.Option(
        [],
        "--expect",
        metavar="SEQ:HASH",
        help="A seq and hash kept elsewhere (from `audit checkpoint`) that must still be in the "
        "chain; repeatable.",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Walk the whole chain; exit 1 naming the first tampered entry."""
    from residency.audit import Anchor, verify

    try:
        anchors = [Anchor.parse(text) for text in expect]
    except ValueError as exc:
        fail(f"--expect: {exc}")
    if len({(a.seq, a.hash) for a in anchors}) != len({a.seq for a in anchors}):
        fail("--expect: two different hashes given for the same seq")
    settings = cli_settings(config)
    key = _public_key(settings, public_key)
    report = _with_db(settings, lambda db: verify(db, key, anchors=anchors))
    if json_out:
        print_json(report.to_dict())
        if not report.ok:
            raise typer.Exit(EXIT_FINDINGS)
        return
    if report.problem is not None:
        fail(f"audit log tampered: {report.problem}", code=EXIT_FINDINGS)
    if report.checkpoints and not report.signatures_checked:
        err_console.print(
            "warning: checkpoint signatures not checked (no signing key in the data directory; "
            "pass --public-key FILE)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if not report.checkpoints:
        signed = "no checkpoints yet"
    elif report.signatures_checked:
        signed = f"{report.checkpoints} checkpoints, signatures verified"
    else:
        signed = f"{report.checkpoints} checkpoints, signatures not checked"
    console.print(
        f"ok: audit log intact: {report.entries} entries, last seq {report.last_seq} "
        f"(hash {report.last_hash}), {signed}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    try:
        fh = path.open("w", encoding="utf-8")
    except OSError as exc:
        fail(f"{path}: cannot write ({exc.strerror})")
    with fh:
        yield fh


def _jsonl(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _time_option(value: str | None, flag: str) -> Any:
    from residency.audit import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        fail(f"{flag}: {exc}")


def _kind_option(value: str | None) -> str | None:
    from residency.audit.kinds import parse_kind

    if value is None:
        return None
    try:
        return parse_kind(value).value
    except ValueError as exc:
        fail(f"--kind: {exc}")


@audit_app.command("export")
def export_cmd(
    since: str | None = typer.Option(
        None, "--since", help="Start: ISO 8601 time or a duration back from now (24h, 7d)."
    ),
    until: str | None = typer.Option(
        None, "--until", help="End (exclusive): ISO 8601 time or a duration back from now."
    ),
    kind: str | None = typer.Option(None, "--kind", help="Only entries of this kind."),
    fmt: str = typer.Option("jsonl", "--format", help="Output format (jsonl)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here, not stdout."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Stream entries as JSON Lines for a SIEM (each line carries prev_hash and hash)."""
    from residency.audit import iter_entries

    if fmt != "jsonl":
        fail(f"--format: unsupported format {fmt!r}; use jsonl")
    start = _time_option(since, "--since")
    end = _time_option(until, "--until")
    kind_value = _kind_option(kind)
    settings = cli_settings(config)

    async def work(db: Database) -> int:
        count = 0
        with _output(output) as out:
            async with db.session(write=False) as session:
                async for rec in iter_entries(session, since=start, until=end, kind=kind_value):
                    out.write(_jsonl(rec))
                    count += 1
        return count

    count = _guard_pipe(lambda: _with_db(settings, work))
    if output is not None:
        err_console.print(
            f"exported {count} entries to {output}", highlight=False, markup=False, soft_wrap=True
        )


def _guard_pipe(run: Callable[[], T]) -> T | None:
    """`residency audit export | head` ends quietly, as Unix tools do."""
    import os

    try:
        return run()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


def _line(rec: dict[str, Any]) -> str:
    detail = "" if rec["detail"] is None else " " + json.dumps(rec["detail"], ensure_ascii=False)
    return (
        f"{rec['seq']:>8}  {rec['ts']}  {rec['kind']:<14}  {rec['actor']}  "
        f"{rec['tenant'] or '-'}  {rec['target']}{detail}"
    )


@audit_app.command("tail")
def tail_cmd(
    lines: int = typer.Option(20, "-n", "--lines", min=0, help="How many recent entries."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new entries."),
    interval: float = typer.Option(
        1.0, "--interval", min=0.05, help="Seconds between polls with --follow."
    ),
    json_out: bool = typer.Option(False, "--json", help="JSON Lines instead of text."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Print the newest entries; with --follow, keep printing as they are appended."""
    from residency.audit import iter_entries, last_entries

    settings = cli_settings(config)

    def emit(rec: dict[str, Any]) -> None:
        sys.stdout.write(_jsonl(rec) if json_out else _line(rec) + "\n")

    async def work(db: Database) -> None:
        import asyncio

        async with db.session(write=False) as session:
            recent = await last_entries(session, lines) if lines else []
            last = recent[-1]["seq"] if recent else await _newest_seq(session)
        for rec in recent:
            emit(rec)
        sys.stdout.flush()
        while follow:
            await asyncio.sleep(interval)
            async with db.session(write=False) as session:
                async for rec in iter_entries(session, after_seq=last):
                    emit(rec)
                    last = rec["seq"]
            sys.stdout.flush()

    try:
        _guard_pipe(lambda: _with_db(settings, work))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


async def _newest_seq(session: Any) -> int:
    from sqlalchemy import func, select

    from residency.meta.models import AuditEntry

    return int(await session.scalar(select(func.max(AuditEntry.seq))) or 0)


@audit_app.command("checkpoint")
def checkpoint_cmd(config: Path | None = CONFIG_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Sign the current end of the chain now (keep the output somewhere else, too)."""
    from residency.audit import SigningKeyError, checkpoint, load_or_create_signing_key
    from residency.audit.canonical import format_ts

    settings = cli_settings(config)

    async def work(db: Database) -> dict[str, Any]:
        try:  # only once the log is known to exist: no key is made for a database that is not
            key = load_or_create_signing_key(settings.data_dir)
        except SigningKeyError as exc:
            fail(str(exc))
        async with db.session() as session:
            cp = await checkpoint(session, key)
            return {
                "seq": cp.seq,
                "hash": cp.hash,
                "ts": format_ts(cp.ts),
                "key_id": cp.key_id,
                "signature": cp.signature,
            }

    data = _with_db(settings, work)
    if json_out:
        print_json(data)
        return
    console.print(
        f"checkpoint: seq {data['seq']} hash {data['hash']} at {data['ts']} "
        f"signed by key {data['key_id']}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@audit_app.command("checkpoints")
def checkpoints_cmd(
    lines: int = typer.Option(20, "-n", "--lines", min=1, help="How many recent checkpoints."),
    config: Path | None = CONFIG_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """List the newest signed checkpoints (the server signs one every `audit_checkpoint_every`
    entries and when it stops)."""
    from sqlalchemy import select

    from residency.audit import AuditCheckpoint
    from residency.audit.canonical import format_ts

    settings = cli_settings(config)

    async def work(db: Database) -> list[dict[str, Any]]:
        async with db.session(write=False) as session:
            rows = await session.scalars(
                select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(lines)
            )
            return [
                {
                    "seq": cp.seq,
                    "hash": cp.hash,
                    "ts": format_ts(cp.ts),
                    "key_id": cp.key_id,
                    "signature": cp.signature,
                }
                for cp in reversed(list(rows))
            ]

    data = _with_db(settings, work)
    if json_out:
        print_json(data)
        return
    if not data:
        console.print("No checkpoints yet.", highlight=False)
        return
    for cp in data:
        console.print(
            f"{cp['seq']:>8}  {cp['ts']}  key {cp['key_id']}  hash {cp['hash']}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@audit_app.command("public-key")
def public_key_cmd(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the PEM here."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Print the checkpoint signing key's public half (PEM), for auditors."""
    from residency.audit import SigningKeyError, load_or_create_signing_key, public_key_pem

    settings = cli_settings(config)
    try:
        pem = public_key_pem(load_or_create_signing_key(settings.data_dir).public_key())
    except SigningKeyError as exc:
        fail(str(exc))
    with _output(output) as out:
        out.write(pem)
