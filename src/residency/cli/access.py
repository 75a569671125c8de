"""`residency access check | explain | ledger` and `residency principal set | show | list`.

Who may touch which data (Cedar policies) and how much covered data each covered principal
has seen (28 CFR 202 bulk-data ledger). Principal attributes feed both.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.table import Table

from residency.cli.common import cli_settings, run_in_session
from residency.cli.output import EXIT_FINDINGS, JSON_OPTION, console, err_console, fail, print_json

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from residency.access import Authorizer, BulkRules, PrincipalRef, Resource
    from residency.config import Settings

T = TypeVar("T")

access_app = typer.Typer(
    help="Access control (Cedar policies) and the DOJ bulk-data ledger (28 CFR 202).",
    no_args_is_help=True,
)
principal_app = typer.Typer(
    help="Set and show principal attributes (country, covered person, organisation, ...).",
    no_args_is_help=True,
)

CONFIG_OPTION = typer.Option(
    None, "--config", "-c", help="residency.yaml (default: ./residency.yaml if present)."
)
DATA_DIR_OPTION = typer.Option(None, "--data-dir", help="Where the database lives.")
POLICY_OPTION = typer.Option(
    None, "--policy", "-p", help="Extra Cedar policy file (repeatable); adds to the configured."
)
NO_DEFAULTS_OPTION = typer.Option(
    False, "--no-defaults", help="Leave out the built-in policies (ownership, DOJ forbids)."
)
THRESHOLDS_OPTION = typer.Option(
    None, "--thresholds", help="Bulk-threshold YAML (default: built-in 28 CFR 202.205 values)."
)
ADMIN_ACTOR = "residency cli"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(access_app, name="access")
    app.add_typer(principal_app, name="principal")


# --- plumbing ------------------------------------------------------------------------------


def _policy_paths(settings: Settings | None, extra: list[Path] | None) -> list[Path]:
    configured = settings.access_policies if settings is not None else []
    return [*configured, *(extra or [])]


def _rules(settings: Settings | None, path: Path | None) -> BulkRules:
    from residency.access import BulkRulesError, load_bulk_rules

    path = path or (settings.bulk_thresholds if settings is not None else None)
    try:
        return load_bulk_rules(path)
    except BulkRulesError as exc:
        fail(exc.message)


def _split_principal(spec: str) -> tuple[str, str]:
    tenant, sep, name = spec.partition("/")
    if not sep or not tenant or not name:
        fail(f"principal {spec!r}: write it as TENANT/NAME, e.g. acme/alice")
    return tenant, name


async def _load_principal(session: AsyncSession, spec: str) -> PrincipalRef:
    from residency.access import PrincipalRef
    from residency.meta.repo import tenants

    tenant_name, name = _split_principal(spec)
    tenant = await tenants.get_tenant(session, tenant_name)
    principal = await tenants.find_principal(session, tenant, name)
    if principal is None:
        fail(
            f"no principal {spec!r}; create it with `residency principal set {spec}` "
            f"or `residency key create --tenant {tenant_name} --name {name}`"
        )
    return PrincipalRef.from_meta(principal, tenant)


# --- access check --------------------------------------------------------------------------


@access_app.command("check")
def check_cmd(
    files: list[Path] = typer.Argument(..., help="Cedar policy files to validate."),
    no_defaults: bool = NO_DEFAULTS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Validate policy files against the residency schema (exit 1 naming file:line if bad)."""
    from residency.access.errors import PolicyFileError
    from residency.access.policyfiles import load_bundle

    try:
        bundle = load_bundle(files, defaults=not no_defaults)
    except PolicyFileError as exc:
        if json_out:
            print_json({"ok": False, "problems": list(exc.problems)})
        else:
            for problem in exc.problems:
                err_console.print(
                    f"[bold red]error:[/] {problem}", highlight=False, markup=True, soft_wrap=True
                )
        raise typer.Exit(EXIT_FINDINGS) from None
    per_file: dict[str, list[str]] = {str(f): [] for f in files}
    for info in bundle.policies.values():
        source = info.source.rsplit(":", 1)[0]
        if source in per_file:
            per_file[source].append(info.id)
    if json_out:
        print_json(
            {"ok": True, "files": [{"file": f, "policies": ids} for f, ids in per_file.items()]}
        )
        return
    for name, ids in per_file.items():
        console.print(
            f"ok  {name}: {len(ids)} policies ({', '.join(ids) or 'none'})",
            highlight=False,
            markup=False,
        )


# --- access explain ------------------------------------------------------------------------


def _parse_context(text: str | None) -> Any:
    from residency.access import RequestContext

    if text is None:
        return RequestContext()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--context is not valid JSON: {exc.msg} (column {exc.colno})")
    if not isinstance(data, dict):
        fail('--context must be a JSON object, e.g. {"source_ip": "10.0.0.1", "purpose": "x"}')
    unknown = set(data) - {"time", "source_ip", "purpose"}
    if unknown:
        fail(
            f"--context: unknown key(s) {', '.join(sorted(unknown))}; use time, source_ip, purpose"
        )
    when = datetime.now(UTC)
    if "time" in data:
        try:
            when = datetime.fromisoformat(str(data["time"]).replace("Z", "+00:00"))
        except ValueError:
            fail(f"--context time {data['time']!r} is not an ISO 8601 timestamp")
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    source_ip = data.get("source_ip")
    purpose = data.get("purpose", "")
    if source_ip is not None and not isinstance(source_ip, str):
        fail("--context source_ip must be a string")
    if not isinstance(purpose, str):
        fail("--context purpose must be a string")
    return RequestContext(time=when, source_ip=source_ip, purpose=purpose)


def _placement_countries(settings: Settings, locations: list[str]) -> set[str]:
    from residency.catalog import CatalogError, load_catalog
    from residency.config import ConfigError

    out: set[str] = set()
    for name in locations:
        try:
            facts = load_catalog().facts_for(settings.location(name))
        except (ConfigError, CatalogError):
            continue  # a location no longer configured: its country is unknown
        if facts.country:
            out.add(facts.country)
    return out


@access_app.command("explain")
def explain_cmd(
    principal: str = typer.Option(..., "--principal", help="TENANT/NAME of the caller."),
    action: str = typer.Option(..., "--action", help="ReadObject, WriteObject, ListBuckets..."),
    resource: str = typer.Option(
        ..., "--resource", help="BUCKET/KEY (object), BUCKET (bucket) or tenant:NAME."
    ),
    version_id: str | None = typer.Option(
        None,
        "--version-id",
        help="An object's version (S3's id, or null) instead of its current one: each "
        "version is judged by its own classification.",
    ),
    context: str | None = typer.Option(
        None, "--context", help='JSON: {"time": ISO, "source_ip": "1.2.3.4", "purpose": "..."}'
    ),
    owner: str | None = typer.Option(
        None, "--owner", help="Tenant owning a bucket that does not exist yet."
    ),
    data_class: str | None = typer.Option(None, "--class", help="Override the object's class."),
    subject: str | None = typer.Option(None, "--subject", help="Override its subject (US...)."),
    subjects: int | None = typer.Option(
        None, "--subjects", min=0, help="Override its subject count."
    ),
    countries: str | None = typer.Option(
        None, "--countries", help="Override its locations' countries, comma-separated."
    ),
    policy: list[Path] | None = POLICY_OPTION,
    no_defaults: bool = NO_DEFAULTS_OPTION,
    thresholds: Path | None = THRESHOLDS_OPTION,
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Show the decision for one request and the policies that made it (exit 1 on deny)."""
    from residency.access import (
        Authorizer,
        BucketRef,
        ObjectRef,
        PolicyFileError,
        RequestError,
        TenantRef,
        parse_action,
    )
    from residency.meta.repo import buckets as bucket_repo
    from residency.meta.repo import objects as object_repo
    from residency.meta.repo.versions import find_version, is_version_id

    try:
        act = parse_action(action)
    except ValueError as exc:
        fail(str(exc))
    if version_id is not None and not is_version_id(version_id):
        fail(f"--version-id {version_id!r}: not a version id (32 hex digits, or null)")
    ctx = _parse_context(context)
    settings = cli_settings(config, data_dir)
    rules = _rules(settings, thresholds)
    try:
        authorizer = Authorizer.from_files(
            _policy_paths(settings, policy), defaults=not no_defaults, rules=rules
        )
    except PolicyFileError as exc:
        fail("invalid policies:\n" + exc.message)

    async def work(session: AsyncSession) -> tuple[PrincipalRef, Resource]:
        who = await _load_principal(session, principal)
        if resource.startswith("tenant:"):
            return who, TenantRef(resource.removeprefix("tenant:"))
        bucket_name, sep, key = resource.partition("/")
        bucket = await bucket_repo.find_bucket(session, bucket_name)
        if bucket is not None:
            from residency.access.lookup import tenant_name

            bucket_owner = await tenant_name(session, bucket.tenant_id)
        elif owner is not None or act.value == "CreateBucket":
            bucket_owner = owner or who.tenant
        else:
            fail(
                f"no bucket {bucket_name!r}; pass --owner TENANT to explain a bucket "
                "that does not exist yet"
            )
        if not sep:
            if version_id is not None:
                fail("--version-id needs an object resource (BUCKET/KEY)")
            return who, BucketRef(bucket_name, bucket_owner)
        if not key:
            fail(f"resource {resource!r}: the object key after '/' is empty")
        version = None
        if bucket is not None and version_id is not None:
            version = await find_version(session, bucket, key, version_id)
            if version is None:
                fail(f"no version {version_id} of {bucket_name}/{key}")
        elif bucket is not None:
            version = await object_repo.find_latest(session, bucket, key)
        elif version_id is not None:
            fail(f"no version {version_id} of {bucket_name}/{key}: no bucket {bucket_name!r}")
        if version is not None and version.is_delete_marker:
            version = None  # no bytes: judged as an object that does not exist
        located: set[str] = set()
        if version is not None:
            _, placements = await object_repo.version_blobs(session, version)
            located = _placement_countries(settings, [p.location for p in placements])
        obj = ObjectRef(
            bucket=bucket_name,
            key=key,
            tenant=bucket_owner,
            data_class=data_class or (version.data_class if version else "unclassified"),
            subject=subject or (version.subject if version else None),
            subject_count=subjects
            if subjects is not None
            else (version.subject_count if version else None),
            countries=frozenset(c.strip().upper() for c in countries.split(",") if c.strip())
            if countries is not None
            else frozenset(located),
            version_id=version.version_id if version else None,
        )
        return who, obj

    who, target = run_in_session(settings, work, create=False)
    try:
        decision = authorizer.authorize(who, act, target, ctx)
    except RequestError as exc:
        fail(exc.message)
    if json_out:
        print_json({**decision.to_dict(), "request": _describe(who, target, ctx)})
    else:
        _print_explain(authorizer, decision, who, target)
    if not decision.allowed:
        raise typer.Exit(EXIT_FINDINGS)


def _describe(who: PrincipalRef, target: Resource, ctx: Any) -> dict[str, Any]:
    from dataclasses import asdict

    res = asdict(target)
    if "countries" in res:
        res["countries"] = sorted(res["countries"])
    return {
        "principal": {**asdict(who), "roles": list(who.roles)},
        "resource": {"kind": type(target).__name__.removesuffix("Ref").lower(), **res},
        "context": {
            "time": ctx.time.isoformat(),
            "source_ip": ctx.source_ip,
            "purpose": ctx.purpose,
        },
    }


def _print_explain(
    authorizer: Authorizer, decision: Any, who: PrincipalRef, target: Resource
) -> None:
    verdict = "[bold green]ALLOW[/]" if decision.allowed else "[bold red]DENY[/]"
    console.print(
        f"{verdict}  {decision.action} on {decision.resource} by {decision.principal}",
        highlight=False,
    )
    if decision.policy_ids:
        console.print("deciding policies:", highlight=False)
        for pid in decision.policy_ids:
            info = authorizer.bundle.info(pid)
            where = f" ({info.effect}, {info.source})" if info else ""
            reason = f": {info.reason}" if info and info.reason else ""
            console.print(f"  {pid}{where}{reason}", highlight=False, markup=False, soft_wrap=True)
    else:
        console.print(
            "deciding policies: none matched, so Cedar denies by default", highlight=False
        )
    for err in decision.errors:
        console.print(f"  skipped (evaluation error): {err}", highlight=False, markup=False)
    console.print(
        f"principal: {who.uid} country={who.country or '-'} covered_person="
        f"{str(who.covered_person).lower()} organisation={who.organisation or '-'} "
        f"security_controls={str(who.security_controls).lower()} roles="
        f"{','.join(who.roles) or '-'}",
        highlight=False,
        markup=False,
    )
    from residency.access import ObjectRef

    if isinstance(target, ObjectRef):
        count = "?" if target.subject_count is None else str(target.subject_count)
        console.print(
            f"resource: object {target.bucket}/{target.key} tenant={target.tenant} "
            f"class={target.data_class} subject={target.subject or '-'} subjects={count} "
            f"countries={','.join(sorted(target.countries)) or '-'}",
            highlight=False,
            markup=False,
        )
    else:
        console.print(
            f"resource: {target.describe()} tenant={target.tenant}", highlight=False, markup=False
        )


# --- access ledger -------------------------------------------------------------------------


@access_app.command("ledger")
def ledger_cmd(
    tenant: str | None = typer.Option(None, "--tenant", "-t", help="Only this tenant's data."),
    thresholds: Path | None = THRESHOLDS_OPTION,
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Where each covered principal or organisation stands against the bulk thresholds."""
    from residency.access import Ledger

    settings = cli_settings(config, data_dir)
    ledger = Ledger(_rules(settings, thresholds))

    async def work(session: AsyncSession) -> list[Any]:
        return await ledger.standings(session, tenant=tenant)

    rows = run_in_session(settings, work, create=False)
    if json_out:
        print_json([r.to_dict() for r in rows])
        return
    if not rows:
        console.print("No covered access recorded.", highlight=False)
        return
    table = Table(
        "tenant",
        "holder",
        "category",
        "kind",
        "count",
        "threshold",
        "% used",
        "window",
        "principals",
    )
    for r in rows:
        pct = r.percent_used
        used = ("over" if r.count else "0") if pct is None else f"{pct:.1f}%"
        if r.over:
            used = f"[bold red]{used}[/]"
        table.add_row(
            r.tenant,
            r.holder,
            r.category,
            r.kind,
            str(r.count),
            "any volume" if r.threshold == 0 else f"> {r.threshold}",
            used,
            f"{r.window_days} d from {r.window_start:%Y-%m-%d}",
            ", ".join(r.principals) or "-",
        )
    console.print(table)


# --- principal set / show / list -----------------------------------------------------------


def _principal_row(tenant: str, name: str, attributes: dict[str, Any]) -> dict[str, Any]:
    from residency.access import PrincipalRef, RequestError

    try:
        effective: Any = PrincipalRef.from_attributes(tenant, name, attributes)
        covered: Any = effective.covered_person
    except RequestError as exc:
        covered = f"invalid: {exc.message}"
    return {
        "principal": f"{tenant}/{name}",
        "attributes": attributes,
        "effective_covered_person": covered,
    }


@principal_app.command("set")
def principal_set(
    principal: str = typer.Argument(..., help="TENANT/NAME (created if it does not exist)."),
    country: str | None = typer.Option(None, "--country", help="ISO code of residence, e.g. CN."),
    covered: bool | None = typer.Option(
        None,
        "--covered-person/--not-covered-person",
        help="28 CFR 202.211 status (default: derived from --country).",
    ),
    organisation: str | None = typer.Option(
        None, "--organisation", "--organization", help="Employer or counterparty."
    ),
    controls: bool | None = typer.Option(
        None,
        "--security-controls/--no-security-controls",
        help="CISA security requirements for restricted transactions are in place.",
    ),
    role: list[str] | None = typer.Option(None, "--role", help="Role name (repeatable)."),
    clear: list[str] | None = typer.Option(
        None, "--clear", help="Remove an attribute (country, covered_person, organisation, ...)."
    ),
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Set the attributes access policies and the ledger read; audited as an admin change."""
    from residency.access import PrincipalRef, RequestError
    from residency.audit import append
    from residency.audit.kinds import ADMIN
    from residency.meta.repo import tenants

    tenant_name, name = _split_principal(principal)
    known = {"country", "covered_person", "organisation", "security_controls", "roles"}
    for attr in clear or []:
        if attr not in known:
            fail(f"--clear {attr!r}: use one of {', '.join(sorted(known))}")
    changes: dict[str, Any] = {}
    if country is not None:
        changes["country"] = country.upper()
    if covered is not None:
        changes["covered_person"] = covered
    if organisation is not None:
        changes["organisation"] = organisation
    if controls is not None:
        changes["security_controls"] = controls
    if role:
        changes["roles"] = sorted(set(role))

    async def work(session: AsyncSession) -> dict[str, Any]:
        tenant = await tenants.get_tenant(session, tenant_name)
        found = await tenants.find_principal(session, tenant, name)
        if found is None:
            found = await tenants.create_principal(session, tenant, name)
        attrs = {k: v for k, v in dict(found.attributes or {}).items() if k not in (clear or [])}
        attrs.update(changes)
        try:
            PrincipalRef.from_attributes(tenant.name, name, attrs)
        except RequestError as exc:
            fail(exc.message)
        await tenants.set_principal_attributes(session, found, attrs)
        await append(
            session,
            ADMIN,
            actor=ADMIN_ACTOR,
            tenant=tenant.name,
            target=f"principal/{tenant.name}/{name}",
            detail={"action": "set_principal_attributes", "attributes": attrs},
        )
        return _principal_row(tenant.name, name, attrs)

    row = run_in_session(cli_settings(config, data_dir), work, create=False)
    if json_out:
        print_json(row)
        return
    _print_principals([row])


@principal_app.command("show")
def principal_show(
    principal: str = typer.Argument(..., help="TENANT/NAME."),
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Show a principal's attributes and its effective covered-person status."""
    from residency.meta.repo import tenants

    tenant_name, name = _split_principal(principal)

    async def work(session: AsyncSession) -> dict[str, Any]:
        tenant = await tenants.get_tenant(session, tenant_name)
        found = await tenants.get_principal(session, tenant, name)
        return _principal_row(tenant.name, name, dict(found.attributes or {}))

    row = run_in_session(cli_settings(config, data_dir), work, create=False)
    if json_out:
        print_json(row)
    else:
        _print_principals([row])


@principal_app.command("list")
def principal_list(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant whose principals to list."),
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """List a tenant's principals with their attributes."""
    from residency.meta.repo import tenants

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        t = await tenants.get_tenant(session, tenant)
        return [
            _principal_row(t.name, p.name, dict(p.attributes or {}))
            for p in await tenants.list_principals(session, t)
        ]

    rows = run_in_session(cli_settings(config, data_dir), work, create=False)
    if json_out:
        print_json(rows)
    else:
        _print_principals(rows)


def _print_principals(rows: list[dict[str, Any]]) -> None:
    table = Table(
        "principal", "country", "covered person", "organisation", "security controls", "roles"
    )
    for r in rows:
        a = r["attributes"]
        table.add_row(
            r["principal"],
            a.get("country") or "-",
            str(r["effective_covered_person"]).lower(),
            a.get("organisation") or "-",
            str(bool(a.get("security_controls"))).lower(),
            ", ".join(a.get("roles") or []) or "-",
        )
    console.print(table)
