"""`residency plan | migrate | verify | adopt | sweep | scan`: move data to where the policy
wants it, and check that it is there (and nowhere else).

Thin wiring: parse flags, build settings, database and locations, call `residency.migrate`,
print a Rich summary (or JSON with `--json`). Exit 0 = all good, 1 = findings (objects with no
compliant location, failed actions, mismatches), 2 = bad input.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from residency.cli.common import cli_settings, on_database
from residency.cli.output import (
    EXIT_FINDINGS,
    JSON_OPTION,
    console,
    err_console,
    fail,
    print_json,
)

if TYPE_CHECKING:
    from residency.config import Settings
    from residency.meta import Database
    from residency.migrate.engine import EngineOptions
    from residency.storage import Location

T = TypeVar("T")

CONFIG_OPTION = typer.Option(
    None, "--config", "-c", help="residency.yaml (default: ./residency.yaml if present)."
)
DATA_DIR_OPTION = typer.Option(None, "--data-dir", help="Where the database lives.")
BUCKET_OPTION = typer.Option(None, "--bucket", "-b", help="Only this bucket.")
POLICY_OPTION = typer.Option(
    None, "--policy", "-p", help="Policy file or preset:NAME (default: the configured policy)."
)


class Engine(StrEnum):
    """Who runs `residency migrate`: this process, or a Ray cluster."""

    local = "local"
    ray = "ray"


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)
    app.command("migrate")(migrate_cmd)
    app.command("verify")(verify_cmd)
    app.command("adopt")(adopt_cmd)
    app.command("sweep")(sweep_cmd)
    from residency.cli.scan import scan_cmd

    app.command("scan")(scan_cmd)


# --- shared wiring --------------------------------------------------------------------------


def _locations(settings: Settings) -> dict[str, Location]:
    from residency.catalog import CatalogError, load_catalog
    from residency.storage import StorageError, open_locations

    try:
        return open_locations(settings, load_catalog())
    except (CatalogError, StorageError, ValueError) as exc:
        fail(f"location config: {exc}")


def _policy(ref: str | None, settings: Settings) -> Any:
    from residency.policy import PolicyError, load_policy

    chosen = ref or (str(settings.policy) if settings.policy else None)
    if chosen is None:
        fail("no policy: pass --policy FILE (or preset:NAME) or set `policy:` in residency.yaml")
    try:
        return load_policy(chosen)
    except PolicyError as exc:
        fail(f"policy: {exc}")


def _run(
    settings: Settings,
    work: Callable[[Database], Awaitable[T]],
    *,
    errors: tuple[type[Exception], ...] = (),
    storage: bool = True,
    create: bool = True,
) -> T:
    """Run `work(db)` on a migrated database; library errors become one readable line.

    `errors` are the command's own (their message is the line); `storage=False` for work that
    never touches a location, so `plan` does not import OpenDAL just to name StorageError;
    `create=False` for commands that only read (no database is an error, not an empty one).
    """
    from residency.meta.errors import MetaError

    storage_errors: tuple[type[Exception], ...] = ()
    if storage:
        from residency.storage import StorageError

        storage_errors = (StorageError,)
    try:
        return on_database(settings, work, create=create)
    except errors as exc:
        fail(str(exc))
    except storage_errors as exc:
        fail(f"storage: {exc}")
    except MetaError as exc:
        fail(exc.message)


def _size(text: str | None, what: str, parse: Callable[[str], int]) -> int | None:
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        fail(f"{what}: {exc}")


# --- plan -----------------------------------------------------------------------------------


def plan_cmd(
    policy: str | None = POLICY_OPTION,
    bucket: str | None = BUCKET_OPTION,
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the plan here."),
    bandwidth: str = typer.Option(
        "100MB/s", "--bandwidth", help="For the duration estimate, e.g. 100MB/s, 1GiB/s."
    ),
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Compare where objects are with where the policy wants them; cost and time the moves."""
    from residency.catalog import load_catalog
    from residency.migrate.planfile import PlanError
    from residency.migrate.planner import plan_to_file
    from residency.migrate.units import parse_rate

    settings = cli_settings(config, data_dir, default_locations=True)
    pol = _policy(policy, settings)
    bps = _size(bandwidth, "--bandwidth", parse_rate) or 0
    catalog = load_catalog()
    facts = [catalog.facts_for(cfg) for cfg in settings.locations]

    async def work(db: Database) -> tuple[Any, Any, Any]:
        from residency.meta.repo.buckets import find_bucket
        from residency.migrate.decide import Decider
        from residency.migrate.leftovers import collect_leftovers

        if bucket is not None:
            async with db.session(write=False) as session:
                if await find_bucket(session, bucket) is None:
                    fail(f"bucket {bucket!r} does not exist")
        target = output or Path(os.devnull)
        tmp = target if output is None else target.with_name(target.name + ".partial")
        try:
            with tmp.open("w", encoding="utf-8") as out:
                result = await plan_to_file(db, pol, facts, out, bucket=bucket, bandwidth=bps)
        except OSError as exc:
            fail(f"{target}: cannot write: {exc.strerror or exc}")
        except BaseException:  # e.g. a bucket policy that cannot be loaded: no half plan
            if output is not None:
                tmp.unlink(missing_ok=True)
            raise
        if output is not None:
            tmp.replace(output)  # a plan file is complete or absent
        async with db.session(write=False) as session:
            leftovers = await collect_leftovers(session, Decider(pol, facts))
        return (*result, leftovers)

    header, summary, leftovers = _run(
        settings, work, errors=(PlanError,), storage=False, create=False
    )
    data = summary.to_dict(bps)
    if json_out:
        print_json(
            {
                "plan": header.id,
                "policy": header.policy,
                "policy_sha256": header.policy_sha256,
                "catalog_sha256": header.catalog_sha256,
                "output": str(output or ""),
                **data,
                "leftovers": [x.to_dict() for x in leftovers],
            }
        )
    else:
        _print_plan(header, data, output)
        for x in leftovers:
            console.print(f"[red]left behind:[/] {escape(x.describe())}", highlight=False)
    if summary.unplaceable or leftovers:
        raise typer.Exit(EXIT_FINDINGS)


def _print_plan(header: Any, s: dict[str, Any], output: Path | None) -> None:
    from residency.meta.repo.inventory import describe_version
    from residency.migrate.units import format_bytes, format_duration

    table = Table(title=f"Plan {header.id[:12]} — policy {header.policy}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("objects", f"{s['objects']:,} ({format_bytes(s['bytes'])})")
    if s["noncurrent_versions"]:
        table.add_row(
            "  of which noncurrent versions",
            f"{s['noncurrent_versions']:,} ({format_bytes(s['noncurrent_bytes'])})",
        )
    table.add_row("already compliant", f"{s['keep']:,}")
    table.add_row("objects to move", f"{s['moves']:,}")
    table.add_row("copies", f"{s['copies']:,} ({format_bytes(s['copy_bytes'])})")
    table.add_row("source deletes", f"{s['deletes']:,} ({format_bytes(s['delete_bytes'])})")
    table.add_row("no compliant location", f"{s['unplaceable']:,}")
    for provider, usd in s["egress_usd_by_provider"].items():
        table.add_row(f"egress {provider}", f"${usd:,.2f}")
    for provider, nbytes in s["egress_unpriced_bytes"].items():
        table.add_row(f"egress {provider}", f"{format_bytes(nbytes)} (price unknown)")
    req = s["requests"]
    table.add_row(
        "requests (est.)",
        f"{req['get']:,} GET, {req['put']:,} PUT, {req['delete']:,} DELETE ≈ "
        f"${s['request_usd']:,.2f}",
    )
    if s["bandwidth"]:
        table.add_row(
            "duration (est.)",
            f"{format_duration(s['duration_s'])} at {format_bytes(s['bandwidth'])}/s",
        )
    console.print(table)
    if s["routes"]:
        routes = Table(title="Routes")
        routes.add_column("from → to")
        routes.add_column("objects", justify="right")
        routes.add_column("bytes", justify="right")
        for route, r in s["routes"].items():
            routes.add_row(route.replace("->", "→"), f"{r['objects']:,}", format_bytes(r["bytes"]))
        console.print(routes)
    for item in s["unplaceable_sample"]:
        what = describe_version(item["bucket"], item["key"], item.get("noncurrent"))
        console.print(
            f"[red]no compliant location:[/] {escape(what)}: {escape(item['reason'])}",
            highlight=False,
            soft_wrap=True,
        )
    if output is not None:
        console.print(f"Plan written to {output}; run it with `residency migrate {output}`.")


# --- migrate --------------------------------------------------------------------------------


def migrate_cmd(
    plan: Path = typer.Argument(..., help="A plan file from `residency plan -o`."),
    policy: str | None = POLICY_OPTION,
    replan: bool = typer.Option(
        False,
        "--replan",
        help="If the policy or catalog changed since the plan was made, plan again under the "
        "current ones and run that.",
    ),
    concurrency: int = typer.Option(
        16, "--concurrency", "-j", min=1, max=1024, help="Objects being copied at once."
    ),
    bwlimit: str | None = typer.Option(None, "--bwlimit", help="Total bandwidth, e.g. 50M."),
    max_rps: float | None = typer.Option(
        None, "--max-rps", min=0.1, help="Storage requests per second, all streams."
    ),
    attempts: int = typer.Option(5, "--attempts", min=1, help="Tries per object."),
    engine: Engine = typer.Option(
        Engine.local, "--engine", help="local: this process; ray: Ray tasks, one per plan shard."
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        help="Ray cluster to join: auto, HOST:PORT or ray://HOST:PORT (default: a local one).",
    ),
    ray_tasks: int | None = typer.Option(
        None,
        "--ray-tasks",
        min=1,
        max=512,
        help="Plan shards, one Ray task each (default: CPUs in the cluster); keep it to resume.",
    ),
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Progress and result as JSON lines."),
) -> None:
    """Execute a plan: copy, verify, erase what must leave. Re-run the same plan to resume.

    Every copy is decided again under the policy in force (--policy, else the configured one)
    on the object's stored classification; a plan made under another policy or catalog is
    refused (exit 2) unless --replan.
    """
    if engine is not Engine.ray and (ray_address is not None or ray_tasks is not None):
        fail("--ray-address and --ray-tasks need --engine ray")
    from residency.migrate.decide import check_bucket_policies
    from residency.migrate.engine import EngineOptions, Migrator
    from residency.migrate.journal import bucket_policies, load_plan, run_counts
    from residency.migrate.planfile import PlanError, StalePlan, read_plan_header
    from residency.migrate.units import parse_rate

    options = EngineOptions(
        concurrency=concurrency,
        bwlimit=_size(bwlimit, "--bwlimit", parse_rate),
        max_rps=max_rps,
        max_attempts=attempts,
    )
    settings = cli_settings(config, data_dir, default_locations=True)
    try:
        planned = read_plan_header(plan)
    except PlanError as exc:
        fail(str(exc))
    if policy is None and settings.policy is None:
        fail(
            f"no policy: pass --policy (the plan was made under {planned.policy}) or set "
            "`policy:` in residency.yaml; every copy is decided again under it"
        )
    pol = _policy(policy, settings)
    locations = _locations(settings)
    facts = [loc.facts for loc in locations.values()]

    async def current_plan(db: Database, tmp: Path) -> Path:
        """The plan to run: the one given, or (--replan, and it is stale) a new one."""
        try:
            planned.check_current(pol, facts)
            return plan
        except StalePlan as exc:
            if not replan:
                raise
            from residency.migrate.planner import plan_to_file

            fresh = tmp / "replanned.jsonl"
            with fresh.open("w", encoding="utf-8") as out:
                header, _ = await plan_to_file(
                    db, pol, facts, out, bucket=planned.bucket, bandwidth=planned.bandwidth
                )
            err_console.print(
                escape(f"{exc}; re-planned under {pol.name} as plan {header.id[:12]}"),
                highlight=False,
                soft_wrap=True,
            )
            return fresh

    async def work(db: Database) -> tuple[Any, Any, Any]:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="residency-replan-") as tmp:
            path = await current_plan(db, Path(tmp))
            if engine is Engine.ray:
                return await _migrate_on_ray(
                    db, settings, pol, path, options, ray_address, ray_tasks, json_out
                )
            header, _new = await load_plan(db, path)
        # A bucket policy that cannot be loaded stops the run before it moves anything.
        check_bucket_policies(pol, await bucket_policies(db, header.id))
        before = await run_counts(db, header.id)
        reporter = _Reporter(json_out, before)
        migrator = Migrator(db, locations, options, policy=pol, progress=reporter.update)
        with reporter:
            result = await migrator.run(header.id)
        return header, result, await run_counts(db, header.id)

    header, result, counts = _run(settings, work, errors=(PlanError,))
    failures = [
        {"bucket": f.bucket, "key": f.key, "error": f.error, "refused": f.refused}
        for f in result.failures
    ]
    not_erased = [f.to_dict() for f in result.erase_failures]
    summary = {
        "event": "result",
        "plan": header.id,
        "policy": pol.name,
        "done": result.done,
        "skipped": result.skipped,
        "failed": result.failed,
        "refused": result.refused,
        "copied_bytes": result.copied_bytes,
        "retries": result.retries,
        "erased": result.erased,
        "erased_bytes": result.erased_bytes,
        "journal": dict(counts),
        "failures": failures,
        "erase_failures": not_erased,
    }
    if json_out:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        from residency.migrate.units import format_bytes

        refused = f" ({result.refused:,} refused by policy {pol.name})" if result.refused else ""
        console.print(
            f"{result.done:,} objects done, {result.skipped:,} skipped (changed since planning), "
            f"{result.failed:,} failed{refused}; {result.retries:,} retries; "
            f"{result.erased:,} blobs ({format_bytes(result.erased_bytes)}) erased from "
            "locations they had to leave.",
            highlight=False,
        )
        for f in failures:
            label = "refused" if f["refused"] else "failed"
            err_console.print(
                f"[red]{label}:[/] " + escape(f"{f['bucket']}/{f['key']}: {f['error']}"),
                highlight=False,
                soft_wrap=True,
            )
        for e in not_erased:
            err_console.print(
                "[red]not erased:[/] "
                + escape(f"{e['target']} at {e['location']} ({e['blob_key']}): {e['error']}"),
                highlight=False,
                soft_wrap=True,
            )
    if not result.ok:
        raise typer.Exit(EXIT_FINDINGS)


async def _migrate_on_ray(
    db: Database,
    settings: Settings,
    policy: Any,
    plan: Path,
    options: EngineOptions,
    address: str | None,
    tasks: int | None,
    json_out: bool,
) -> tuple[Any, Any, Any]:
    """The plan's shards as Ray tasks; the same progress, result and exit code as local."""
    from residency.migrate.decide import check_bucket_policies
    from residency.migrate.journal import bucket_policies
    from residency.migrate.ray_engine import RayEngineError, RayMigration

    try:
        async with RayMigration(
            settings, options, policy=policy, address=address, tasks=tasks
        ) as ray_run:
            header, before = await ray_run.prepare(db, plan)
            # As for the local engine: an unloadable bucket policy stops the run up front,
            # not inside a task on some worker.
            for run_id in ray_run.run_ids:
                check_bucket_policies(policy, await bucket_policies(db, run_id))
            reporter = _Reporter(json_out, before)
            with reporter:
                result = await ray_run.run(lambda outcome, n: reporter.update(None, outcome, n))
            return header, result, await ray_run.counts(db)
    except RayEngineError as exc:
        fail(str(exc))


class _Reporter:
    """Rich progress on stderr for people; one JSON line per second on stdout for scripts."""

    def __init__(self, json_out: bool, counts: dict[str, int]) -> None:
        self.json_out = json_out
        self.total = counts.get("total", 0) - counts.get("done", 0) - counts.get("skipped", 0)
        self.total_bytes = counts.get("bytes_left", 0)
        self.objects = 0
        self.bytes = 0
        self.failed = 0
        self.started = time.monotonic()
        self._last = 0.0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Reporter:
        if not self.json_out:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[copied]} copied, {task.fields[rate]}"),
                TimeRemainingColumn(),
                console=err_console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "objects", total=self.total, copied="0 B", rate="0 B/s"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif self.json_out:
            self._emit()

    def update(self, action: Any, outcome: str, nbytes: int) -> None:
        self.bytes += nbytes
        if outcome in ("done", "skipped"):
            self.objects += 1
        elif outcome == "failed":
            self.failed += 1
        if self._progress is not None:
            from residency.migrate.units import format_bytes

            elapsed = max(time.monotonic() - self.started, 1e-6)
            self._progress.update(
                self._task,
                completed=self.objects + self.failed,
                copied=format_bytes(self.bytes),
                rate=f"{format_bytes(self.bytes / elapsed)}/s",
            )
            return
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            self._emit()

    def _emit(self) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.bytes / elapsed
        left = max(self.total - self.objects - self.failed, 0)
        obj_rate = self.objects / elapsed
        line = {
            "event": "progress",
            "objects": self.objects,
            "objects_total": self.total,
            "failed": self.failed,
            "bytes": self.bytes,
            "bytes_per_s": round(rate),
            "objects_per_s": round(obj_rate, 1),
            "eta_s": round(left / obj_rate, 1) if obj_rate > 0 else None,
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


# --- verify ---------------------------------------------------------------------------------


def verify_cmd(
    bucket: str | None = BUCKET_OPTION,
    deep: bool = typer.Option(False, "--deep", help="Re-read bytes and compare checksums."),
    concurrency: int = typer.Option(32, "--concurrency", "-j", min=1, max=1024),
    policy: str | None = typer.Option(
        None,
        "--policy",
        "-p",
        help="Judge parts of open uploads under this policy (default: the configured one).",
    ),
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Check that every placement exists with the right size (and, --deep, checksums), and
    that no byte the metadata knows of is left where the policy forbids it.

    Exit 1 on a mismatch or on such leftovers: blobs a migration released but has not erased
    yet, and (with a policy) parts of open uploads at locations it no longer allows.
    """
    from residency.migrate.verify import Mismatch, verify_placements

    settings = cli_settings(config, data_dir, default_locations=True)
    locations = _locations(settings)
    decider = None
    if policy is not None or settings.policy is not None:
        from residency.migrate.decide import Decider

        decider = Decider(_policy(policy, settings), [loc.facts for loc in locations.values()])

    def show(m: Mismatch) -> None:
        if not json_out:
            console.print(
                f"[red]mismatch:[/] {escape(m.describe())}", highlight=False, soft_wrap=True
            )

    async def work(db: Database) -> tuple[Any, Any]:
        from residency.migrate.leftovers import collect_leftovers

        result = await verify_placements(
            db, locations, bucket=bucket, deep=deep, concurrency=concurrency, on_mismatch=show
        )
        async with db.session(write=False) as session:
            return result, await collect_leftovers(session, decider)

    result, leftovers = _run(settings, work, create=False)
    if json_out:
        print_json(
            {
                "objects": result.objects,
                "blobs": result.blobs,
                "bytes": result.bytes,
                "deep": deep,
                "mismatches": [m.to_dict() for m in result.mismatches],
                "leftovers": [x.to_dict() for x in leftovers],
            }
        )
    else:
        how = "deep: sizes and checksums" if deep else "sizes"
        console.print(
            f"{result.objects:,} objects, {result.blobs:,} blobs checked ({how}); "
            f"{len(result.mismatches):,} mismatches; "
            f"{sum(x.blobs for x in leftovers):,} blobs left where the policy forbids them.",
            highlight=False,
        )
        for x in leftovers:
            console.print(f"[red]left behind:[/] {escape(x.describe())}", highlight=False)
    if result.mismatches or leftovers:
        raise typer.Exit(EXIT_FINDINGS)


# --- adopt ----------------------------------------------------------------------------------


def adopt_cmd(
    location: str = typer.Argument(..., help="A configured location holding the blobs."),
    bucket: str = typer.Option(..., "--bucket", "-b", help="Residency bucket to adopt into."),
    prefix: str = typer.Option("", "--prefix", help="Only keys starting with this."),
    rules: Path | None = typer.Option(
        None,
        "--rules",
        help="rules.yaml: key prefix/regex, object metadata or (s3) tags → class/subject/count.",
    ),
    lookup: Path | None = typer.Option(
        None, "--lookup", help="key → class/subject/count as CSV or JSONL."
    ),
    tenant: str | None = typer.Option(
        None, "--tenant", help="Create the bucket for this tenant if it does not exist."
    ),
    concurrency: int = typer.Option(
        16,
        "--concurrency",
        "-j",
        min=1,
        max=1024,
        help="Metadata/tag reads in flight (one request per object, only for such rules).",
    ),
    policy: str | None = POLICY_OPTION,
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Inventory an existing bucket (native key layout) into residency, without copying.

    Rules (first hit wins per field, after --lookup) match on the key (prefix, regex), on
    user metadata (`metadata: {name: value}`; x-amz-meta-* on s3, user.* xattrs on fs) and on
    s3 object tags (`tags: {name: value}`); `from_metadata: true` / `from_tags: true` take the
    class and subject the object carries in residency-class / residency-subject.
    """
    from residency.migrate.adopt import (
        AdoptError,
        Classifier,
        adopt_location,
        load_lookup,
        load_rules,
    )

    settings = cli_settings(config, data_dir, default_locations=True)
    locations = _locations(settings)
    if location not in locations:
        fail(f"no location named {location!r} (configured: {', '.join(locations)})")
    # Classification needs a policy's classifiers and default class; any policy will do.
    pol = _policy(policy or (None if settings.policy else "preset:default"), settings)
    try:
        classifier = Classifier(
            pol,
            rules=load_rules(rules) if rules else (),
            lookup=load_lookup(lookup) if lookup else None,
        )
    except AdoptError as exc:
        fail(str(exc))

    async def work(db: Database) -> Any:
        if tenant is not None:
            await _ensure_bucket(db, tenant, bucket)
        return await adopt_location(
            db, locations[location], bucket, classifier, prefix=prefix, concurrency=concurrency
        )

    result = _run(settings, work, errors=(AdoptError,))
    data = {
        "location": location,
        "bucket": bucket,
        "listed": result.listed,
        "adopted": result.adopted,
        "already_managed": result.already,
        "bytes": result.bytes,
        "by_class": result.by_class,
        "errors": [{"key": k, "error": e} for k, e in result.errors],
    }
    if json_out:
        print_json(data)
    else:
        from residency.migrate.units import format_bytes

        console.print(
            f"Adopted {result.adopted:,} objects ({format_bytes(result.bytes)}) from {location} "
            f"into bucket {bucket}; {result.already:,} were already managed.",
            highlight=False,
        )
        for cls, n in sorted(result.by_class.items()):
            console.print(f"  {cls}: {n:,}", highlight=False)
        for k, e in result.errors:
            err_console.print(
                "[red]not adopted, unclassifiable:[/] " + escape(f"{k}: {e}"),
                highlight=False,
                soft_wrap=True,
            )
    if result.errors:
        raise typer.Exit(EXIT_FINDINGS)


async def _ensure_bucket(db: Database, tenant_name: str, bucket_name: str) -> None:
    from residency.audit import ADMIN, append
    from residency.meta.repo import buckets, tenants

    async with db.session() as session:
        if await buckets.find_bucket(session, bucket_name) is not None:
            return
        tenant = await tenants.find_tenant(session, tenant_name)
        if tenant is None:
            tenant = await tenants.create_tenant(session, tenant_name)
        await buckets.create_bucket(session, tenant, bucket_name)
        await append(
            session,
            ADMIN,
            actor="residency adopt",
            tenant=tenant_name,
            target=f"bucket/{bucket_name}",
            detail={"action": "create_bucket"},
        )


# --- sweep ----------------------------------------------------------------------------------


def sweep_cmd(
    grace: str = typer.Option(
        "1h", "--grace", help="Leave orphans younger than this (90s, 15m, 1h, 7d; 0 = all)."
    ),
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Erase what had to leave a location at once; delete orphans older than --grace.

    Orphans are blobs nothing references any more (replaced versions, abandoned writes); the
    grace period protects reads and writes still under way. Bytes a migration released
    because the policy wants them gone are not orphans: they are erased whatever their age.
    """
    from residency.migrate.sweep import sweep
    from residency.migrate.units import parse_duration

    try:
        period = parse_duration(grace)
    except ValueError as exc:
        fail(f"--grace: {exc}")
    settings = cli_settings(config, data_dir, default_locations=True)
    locations = _locations(settings)

    async def work(db: Database) -> Any:
        return await sweep(db, locations, grace=period)

    result = _run(settings, work)
    counts = {
        "deleted": result.deleted,
        "intents_expired": result.intents_expired,
        "still_live": result.still_live,
        "skipped": result.skipped,
        "failed": result.failed,
        "erased": result.erased,
    }
    not_erased = [f.to_dict() for f in result.erase_failures]
    if json_out:
        print_json(
            {"grace_seconds": int(period.total_seconds()), **counts, "erase_failures": not_erased}
        )
    else:
        console.print(
            f"{result.erased:,} blobs erased from locations they had to leave; "
            f"{result.deleted:,} orphaned blobs deleted ({result.intents_expired:,} from "
            f"abandoned writes); {result.still_live:,} still referenced, "
            f"{result.skipped:,} at locations not configured here, "
            f"{result.failed:,} could not be deleted (kept for the next sweep).",
            highlight=False,
        )
        for e in not_erased:
            err_console.print(
                "[red]not erased:[/] " + escape(f"{e['location']} {e['blob_key']}: {e['error']}"),
                highlight=False,
                soft_wrap=True,
            )
    if result.failed or result.erase_failures:
        raise typer.Exit(EXIT_FINDINGS)
