"""`residency tenant ...` and `residency key ...`: who may use the gateway.

Secrets are printed once, by `key create`, and never again (`key list` shows ids only).
Every change is appended to the audit log in the same transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.table import Table

from residency.cli.common import cli_settings, run_in_session
from residency.cli.output import JSON_OPTION, console, print_json

T = TypeVar("T")

tenant_app = typer.Typer(
    help="Create and list tenants (organisations that own buckets).", no_args_is_help=True
)
key_app = typer.Typer(help="Issue, list and revoke S3 access keys.", no_args_is_help=True)
bucket_app = typer.Typer(help="Operator settings of a bucket.", no_args_is_help=True)

CONFIG_OPTION = typer.Option(
    None, "--config", "-c", help="residency.yaml (default: ./residency.yaml if present)."
)
DATA_DIR_OPTION = typer.Option(
    None, "--data-dir", help="Where the database lives [./residency-data]."
)
ADMIN_ACTOR = "residency cli"


async def _audit(session: Any, tenant: str | None, target: str, detail: dict[str, Any]) -> None:
    from residency.audit import append
    from residency.audit.kinds import ADMIN

    await append(session, ADMIN, actor=ADMIN_ACTOR, tenant=tenant, target=target, detail=detail)


@tenant_app.command("create")
def tenant_create(
    name: str = typer.Argument(..., help="Tenant name: lowercase letters, digits and '-'."),
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Create a tenant."""
    from residency.meta.repo import tenants

    async def work(session: Any) -> dict[str, Any]:
        tenant = await tenants.create_tenant(session, name)
        await _audit(session, tenant.name, f"tenant/{tenant.name}", {"action": "create_tenant"})
        return {"name": tenant.name, "created": tenant.created.isoformat()}

    created = run_in_session(cli_settings(config, data_dir), work)
    if json_out:
        print_json(created)
    else:
        console.print(f"Created tenant [bold]{created['name']}[/].", highlight=False)


@tenant_app.command("list")
def tenant_list(
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """List tenants with their bucket and key counts."""
    from residency.meta.repo import buckets, tenants

    async def work(session: Any) -> list[dict[str, Any]]:
        rows = []
        for tenant in await tenants.list_tenants(session):
            keys = await tenants.list_access_keys(session, tenant=tenant)
            rows.append(
                {
                    "name": tenant.name,
                    "created": tenant.created.isoformat(),
                    "buckets": len(await buckets.list_buckets(session, tenant)),
                    "active_keys": sum(1 for k, _ in keys if k.status == "active"),
                }
            )
        return rows

    rows = run_in_session(cli_settings(config, data_dir), work, create=False)
    if json_out:
        print_json(rows)
        return
    table = Table("tenant", "created", "buckets", "active keys")
    for r in rows:
        table.add_row(r["name"], r["created"], str(r["buckets"]), str(r["active_keys"]))
    console.print(table)


@key_app.command("create")
def key_create(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant the key acts for."),
    name: str = typer.Option(
        "admin", "--name", "-n", help="Principal (user or service) the key belongs to."
    ),
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Issue an access key; the secret is printed now and never again."""
    from residency.meta.repo import tenants

    async def work(session: Any) -> dict[str, Any]:
        t = await tenants.get_tenant(session, tenant)
        principal = await tenants.find_principal(session, t, name)
        if principal is None:
            principal = await tenants.create_principal(session, t, name)
        key = await tenants.create_access_key(session, principal)
        await _audit(
            session,
            t.name,
            f"key/{key.access_key_id}",
            {"action": "create_key", "principal": principal.name},
        )
        return {
            "tenant": t.name,
            "principal": principal.name,
            "access_key_id": key.access_key_id,
            "secret_access_key": key.secret,
        }

    created = run_in_session(cli_settings(config, data_dir), work, create=False)
    if json_out:
        print_json(created)
        return
    console.print(
        f"Access key for {created['tenant']}/{created['principal']} "
        "[bold yellow](the secret is shown only now: store it)[/]:",
        highlight=False,
    )
    console.print(f"  access key id:     {created['access_key_id']}", highlight=False)
    console.print(
        f"  secret access key: {created['secret_access_key']}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@key_app.command("list")
def key_list(
    tenant: str | None = typer.Option(None, "--tenant", "-t", help="Only this tenant's keys."),
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """List access keys (ids, owners, status; never secrets)."""
    from residency.meta.repo import tenants

    async def work(session: Any) -> list[dict[str, Any]]:
        t = await tenants.get_tenant(session, tenant) if tenant else None
        names = {x.id: x.name for x in await tenants.list_tenants(session)}
        rows = []
        for key, principal in await tenants.list_access_keys(session, tenant=t):
            rows.append(
                {
                    "access_key_id": key.access_key_id,
                    "tenant": names.get(principal.tenant_id, "?"),
                    "principal": principal.name,
                    "status": key.status,
                    "created": key.created.isoformat(),
                    "last_used": key.last_used.isoformat() if key.last_used else None,
                }
            )
        return rows

    rows = run_in_session(cli_settings(config, data_dir), work, create=False)
    if json_out:
        print_json(rows)
        return
    table = Table("access key id", "tenant", "principal", "status", "created", "last used")
    for r in rows:
        table.add_row(
            r["access_key_id"],
            r["tenant"],
            r["principal"],
            r["status"],
            r["created"],
            r["last_used"] or "-",
        )
    console.print(table)


@key_app.command("revoke")
def key_revoke(
    access_key_id: str = typer.Argument(..., help="The access key id to revoke."),
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Revoke an access key: requests signed with it fail within 5 s (keys are cached briefly)."""
    from residency.meta.models import Principal, Tenant
    from residency.meta.repo import tenants

    async def work(session: Any) -> dict[str, Any]:
        key = await tenants.revoke_access_key(session, access_key_id)
        principal = await session.get(Principal, key.principal_id)
        tenant = await session.get(Tenant, principal.tenant_id) if principal else None
        await _audit(
            session,
            tenant.name if tenant else None,
            f"key/{key.access_key_id}",
            {"action": "revoke_key"},
        )
        return {"access_key_id": key.access_key_id, "status": key.status}

    revoked = run_in_session(cli_settings(config, data_dir), work, create=False)
    if json_out:
        print_json(revoked)
    else:
        console.print(f"Revoked access key {revoked['access_key_id']}.", highlight=False)


@bucket_app.command("policy")
def bucket_policy(
    bucket: str = typer.Argument(..., help="The bucket."),
    policy: str | None = typer.Argument(
        None, help="preset:NAME or a policy file to add to the operator's policy; omit to show."
    ),
    clear: bool = typer.Option(False, "--clear", help="Remove the bucket's own policy."),
    config: Path | None = CONFIG_OPTION,
    data_dir: Path | None = DATA_DIR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Show or set the policy a bucket adds to the operator's (it can only narrow; audited)."""
    from residency.cli.output import fail
    from residency.meta.repo import buckets
    from residency.policy import PolicyError, load_policy

    if policy is not None and clear:
        fail("give a policy or --clear, not both")
    spec = policy
    if spec is not None and not spec.startswith("preset:"):
        spec = str(Path(spec).resolve())  # the server may run elsewhere: pin the file
    if spec is not None:
        try:
            load_policy(spec)
        except PolicyError as exc:
            fail(str(exc))
    change = clear or spec is not None

    async def work(session: Any) -> dict[str, Any]:
        from residency.meta.models import Tenant

        row = await buckets.find_bucket(session, bucket)
        if row is None:
            fail(f"no bucket named {bucket!r}")
        before = row.policy
        if change:
            await buckets.update_bucket(
                session,
                row,
                default_class=row.default_class,
                default_subject=row.default_subject,
                policy=None if clear else spec,
            )
            tenant = await session.get(Tenant, row.tenant_id)
            await _audit(
                session,
                tenant.name if tenant else None,
                f"s3://{bucket}",
                {"action": "set_bucket_policy", "before": before, "after": row.policy},
            )
        return {"bucket": bucket, "policy": row.policy, "before": before, "changed": change}

    result = run_in_session(cli_settings(config, data_dir), work, create=False)
    if json_out:
        print_json(result)
    elif change:
        console.print(
            f"Bucket {bucket}: policy {result['before'] or '(none)'} -> "
            f"{result['policy'] or '(none)'} (added to the operator's policy; audited).",
            highlight=False,
            markup=False,
        )
    else:
        console.print(
            f"Bucket {bucket}: {result['policy'] or 'no policy of its own'} "
            "(the operator's policy applies in full either way).",
            highlight=False,
            markup=False,
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(tenant_app, name="tenant")
    app.add_typer(key_app, name="key")
    app.add_typer(bucket_app, name="bucket")
