"""CLI: `residency policy check | explain | presets` — validate and question residency policies."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import typer

from residency.cli.output import (
    EXIT_FINDINGS,
    EXIT_USAGE,
    JSON_OPTION,
    console,
    fail,
    print_json,
)

policy_app = typer.Typer(
    help="Validate policies and explain where an object may live.",
    no_args_is_help=True,
)

FILE_ARG = typer.Argument(..., help="Policy YAML file, or preset:NAME (see `policy presets`).")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    from residency.cli.policy_test import register_test

    register_test(policy_app)
    app.add_typer(policy_app, name="policy")


def _load(ref: str) -> Any:
    from residency.policy import PolicyError, load_policy

    try:
        return load_policy(ref)
    except PolicyError as exc:
        fail(str(exc))


@policy_app.command("check")
def check(file: str = FILE_ARG, json: bool = JSON_OPTION) -> None:
    """Validate a policy (and everything it extends); print its rules."""
    from residency.policy import PolicyError, load_policy

    try:
        policy = load_policy(file)
    except PolicyError as exc:
        if json:
            print_json({"ok": False, "problems": [vars_of(p) for p in exc.problems]})
            raise typer.Exit(EXIT_USAGE) from None
        fail(str(exc))
    if json:
        print_json(
            {
                "ok": True,
                "policy": policy.name,
                "rules": len(policy.rules),
                "rule_ids": [r.id for r in policy.rules],
                "sources": list(policy.sources),
                "require_classification": policy.require_classification,
                "default_class": policy.default_class,
                "unknown_subject": policy.unknown_subject,
                "classes": policy.classes,
                "exceptions": [
                    {
                        "id": e.id,
                        "relaxes": e.relaxes,
                        "mechanism": e.mechanism,
                        "locations": list(e.locations),
                        "evidence": e.evidence,
                        "expires": e.expires.isoformat(),
                        "active": e.active(date.today()),
                        "source": e.source,
                    }
                    for e in policy.exceptions
                ],
            }
        )
        return
    n = len(policy.rules)
    console.print(
        f"ok: policy {policy.name}: {n} rule{'s' if n != 1 else ''} "
        f"from {len(policy.sources)} file{'s' if len(policy.sources) != 1 else ''}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    for i, rule in enumerate(policy.rules, 1):
        console.print(
            f"  {i:>2}. {rule.id}  ({rule.source})", highlight=False, markup=False, soft_wrap=True
        )
    for e in policy.exceptions:
        state = "active" if e.active(date.today()) else "EXPIRED, not applied"
        console.print(
            f"  exception {e.id}: relaxes {e.relaxes} at {', '.join(e.locations)} "
            f"({e.mechanism}; evidence {e.evidence}; expires {e.expires.isoformat()}, {state})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def vars_of(problem: Any) -> dict[str, Any]:
    return {
        "file": problem.file,
        "line": problem.line,
        "path": problem.path,
        "message": problem.message,
    }


@policy_app.command("explain")
def explain(
    file: str = FILE_ARG,
    data_class: str | None = typer.Option(
        None, "--class", help="Data class, e.g. personal.health (else classifiers/default)."
    ),
    subject: str | None = typer.Option(
        None, "--subject", help="Subject jurisdiction: country code or group (US, EU, EEA)."
    ),
    count: int | None = typer.Option(None, "--count", help="Number of data subjects.", min=0),
    tenant: str | None = typer.Option(None, "--tenant", help="Tenant the object belongs to."),
    bucket: str | None = typer.Option(None, "--bucket", help="Bucket the object is in."),
    key: str = typer.Option("", "--key", help="Object key (drives the policy's classifiers)."),
    locations: Path | None = typer.Option(
        None,
        "--locations",
        help="residency.yaml-style file with `locations:`; default: the built-in six.",
    ),
    json: bool = JSON_OPTION,
) -> None:
    """Show where a hypothetical object may live, and why every other location may not."""
    from residency.policy import ClassificationError, ObjectAttrs, classify, evaluate

    policy = _load(file)
    facts = _location_facts(locations)
    try:
        c = classify(
            policy,
            key=key,
            explicit_class=data_class,
            explicit_subject=subject,
            explicit_count=count,
            bucket=bucket,
        )
    except ClassificationError as exc:
        fail(str(exc))
    obj = ObjectAttrs(
        data_class=c.data_class,
        subject=c.subject,
        subject_count=c.subject_count,
        tenant=tenant,
        bucket=bucket,
        key=key or None,
    )
    decision = evaluate(policy, obj, facts)
    if json:
        print_json(
            {
                "policy": policy.name,
                "object": {
                    "data_class": c.data_class,
                    "class_source": c.source,
                    "subject": c.subject,
                    "subject_count": c.subject_count,
                    "tenant": tenant,
                    "bucket": bucket,
                    "key": key or None,
                },
                "decision": decision.to_dict(),
            }
        )
    else:
        _print_decision(policy.name, c, decision)
    if not decision.ok:
        raise typer.Exit(EXIT_FINDINGS)


def _location_facts(config: Path | None) -> list[Any]:
    from residency.catalog import CatalogError, load_catalog
    from residency.config import ConfigError, load_settings
    from residency.defaults import default_locations

    if config is None:
        configs = default_locations()
    else:
        try:
            configs = load_settings(config).locations
        except ConfigError as exc:
            fail(str(exc))
        if not configs:
            fail(f"{config}: no `locations:` configured")
    catalog = load_catalog()
    try:
        return [catalog.facts_for(cfg) for cfg in configs]
    except CatalogError as exc:
        fail(f"{config or 'default locations'}: {exc}")


def _print_decision(policy_name: str, c: Any, decision: Any) -> None:
    def line(text: str = "") -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    subject = c.subject or "unknown"
    count = f", {c.subject_count} subjects" if c.subject_count is not None else ""
    line(f"policy:    {policy_name}")
    line(f"object:    class {c.data_class} (from {c.source}), subject {subject}{count}")
    if decision.refusal in ("unknown-class", "unknown-subject"):
        line("rules:     - (refused before any rule: the object is not known well enough)")
    elif not decision.rules:
        line("rules:     none: no law in force restricts this")
    else:
        line("rules:")
        for r in decision.rules:
            line(f"  {r.id}  [{r.policy}]  {r.citation}  ({r.source})")
    for exc in decision.exceptions:
        line(f"exception: {exc}")
    for note in decision.notes:
        line(f"note:      {note}")
    line(f"verdict:   {'compliant' if decision.ok else 'NO COMPLIANT PLACEMENT'}")
    line(f"chosen:    {', '.join(decision.chosen) or '-'}")
    line(f"allowed:   {', '.join(decision.allowed) or '-'}")
    if decision.exclusions:
        line("excluded:")
        width = max(len(e.location) for e in decision.exclusions)
        for e in decision.exclusions:
            line(f"  {e.location:<{width}}  {e.reason}")
    line()
    line(decision.message)


@policy_app.command("presets")
def presets(json: bool = JSON_OPTION) -> None:
    """List the built-in presets (use them as preset:NAME or in `extends:`)."""
    from rich.table import Table

    from residency.policy import PolicyError, list_presets

    try:
        loaded = list_presets()
    except PolicyError as exc:
        fail(str(exc))
    if json:
        print_json(
            [
                {
                    "name": p.name,
                    "description": p.description,
                    "citation": p.citation,
                    "extends": list(p.extends),
                    "rules": [
                        {"id": r.id, "citation": r.citation, "description": r.description}
                        for r in p.rules
                    ],
                }
                for p in loaded
            ]
        )
        return
    table = Table("preset", "rules", "what it does")
    for p in loaded:
        first_sentence = re.split(r"(?<=[a-z)]\.)\s+(?=[A-Z])", p.description, maxsplit=1)[0]
        table.add_row(f"preset:{p.name}", "\n".join(r.id for r in p.rules), first_sentence)
    console.print(table)
    console.print("Citations and full descriptions: `residency policy presets --json`.")


@policy_app.command("diff")
def diff(
    old: str = typer.Argument(..., help="The policy in force: a YAML file or preset:NAME."),
    new: str = typer.Argument(..., help="The policy you would apply instead."),
    bucket: str | None = typer.Option(None, "--bucket", help="Only objects of this bucket."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="residency.yaml (default: ./residency.yaml if present)."
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Where the database lives."),
    json: bool = JSON_OPTION,
) -> None:
    """What NEW would put out of bounds among the stored objects, before you apply it.

    Exit 0 when nothing that is in bounds today would be out of bounds, 1 when something
    would (the counts, bytes, destinations and egress cost say what fixing it takes), 2 on
    bad input.
    """
    from residency.catalog import CatalogError, load_catalog
    from residency.cli.common import cli_settings, on_database
    from residency.meta.errors import MetaError
    from residency.meta.repo.inventory import describe_version
    from residency.migrate.units import format_bytes
    from residency.report.policy_diff import PolicyDiff, diff_policies

    before, after = _load(old), _load(new)
    settings = cli_settings(config, data_dir, default_locations=True)
    try:
        facts = [load_catalog().facts_for(cfg) for cfg in settings.locations]
    except CatalogError as exc:
        fail(f"location config: {exc}")

    async def work(db: Any) -> PolicyDiff:
        return await diff_policies(db, before, after, facts, bucket=bucket)

    try:
        result = on_database(settings, work, create=False)
    except MetaError as exc:
        fail(exc.message)
    if json:
        print_json(result.to_dict())
    else:

        def line(text: str) -> None:
            console.print(text, highlight=False, markup=False, soft_wrap=True)

        noncurrent = (
            f", {result.noncurrent:,} of them noncurrent versions" if result.noncurrent else ""
        )
        line(
            f"{result.objects:,} objects ({format_bytes(result.bytes)}{noncurrent}) judged by "
            f"{old} and {new}"
        )
        line(
            f"would break:  {result.breaking:,} objects ({format_bytes(result.breaking_bytes)}), "
            f"{result.unplaceable:,} of them allowed nowhere"
        )
        line(f"put right:    {result.fixed:,} objects ({format_bytes(result.fixed_bytes)})")
        line(f"already out:  {result.already:,} objects ({format_bytes(result.already_bytes)})")
        for loc, n in sorted(result.leaving.items()):
            line(f"  leave {loc}: {format_bytes(n)}")
        for loc, n in sorted(result.destinations.items()):
            line(f"  copy to {loc}: {format_bytes(n)}")
        for rule, n in result.rules.most_common():
            line(f"  rule {rule}: {n:,} objects")
        unpriced = (
            f" (+{format_bytes(result.unpriced_bytes)} at unknown prices)"
            if result.unpriced_bytes
            else ""
        )
        line(f"egress to fix: ${result.egress_usd:,.2f}{unpriced}")
        for item in result.sample[:5]:
            what = describe_version(item["bucket"], item["key"], item["noncurrent"])
            line(f"  e.g. s3://{what}: {item['why']}")
    if result.breaks:
        raise typer.Exit(EXIT_FINDINGS)
