"""Cedar authorization: default tenant ownership, DOJ forbids, operator policy files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from residency.access import (
    Action,
    Authorizer,
    BucketRef,
    ObjectRef,
    PolicyFileError,
    PrincipalRef,
    RequestContext,
    RequestError,
    TenantRef,
    load_authorizer,
)
from residency.access.actions import RESOURCE_KINDS, S3_OPERATIONS

ALICE = PrincipalRef("acme", "alice", country="US")
MALLORY = PrincipalRef("evil", "mallory", country="US")
LI = PrincipalRef.from_attributes("acme", "li", {"country": "CN", "organisation": "ByteDance"})
HEALTH = ObjectRef("acme-data", "patients/1.csv", "acme", "personal.health", "US", 500)


@pytest.fixture(scope="module")
def authz() -> Authorizer:
    return Authorizer.from_files()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_own_tenant_allowed_by_ownership_policy(authz: Authorizer) -> None:
    decision = authz.authorize(ALICE, Action.READ_OBJECT, HEALTH)
    assert decision.allowed
    assert decision.policy_ids == ("tenant-ownership",)
    assert "allowed by policy tenant-ownership" in decision.message


def test_other_tenant_denied_by_default(authz: Authorizer) -> None:
    decision = authz.authorize(MALLORY, Action.READ_OBJECT, HEALTH)
    assert not decision.allowed
    assert decision.policy_ids == ()
    assert "evil/mallory" in decision.message
    assert "default deny" in decision.message


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        (Action.LIST_BUCKETS, TenantRef("acme")),
        (Action.CREATE_BUCKET, BucketRef("new-bucket", "acme")),
        (Action.DELETE_BUCKET, BucketRef("acme-data", "acme")),
        (Action.LIST_OBJECTS, BucketRef("acme-data", "acme")),
        (Action.MANAGE_MULTIPART, BucketRef("acme-data", "acme")),
        (Action.MANAGE_MULTIPART, HEALTH),
        (Action.MANAGE_TAGGING, HEALTH),
        (Action.WRITE_OBJECT, HEALTH),
        (Action.DELETE_OBJECT, HEALTH),
    ],
)
def test_every_s3_family_follows_ownership(
    authz: Authorizer, action: Action, resource: TenantRef | BucketRef | ObjectRef
) -> None:
    assert authz.authorize(ALICE, action, resource).allowed
    other = authz.authorize(MALLORY, action, resource)
    assert not other.allowed
    assert other.policy_ids == ()


def test_listing_another_tenants_account_is_denied(authz: Authorizer) -> None:
    assert not authz.authorize(ALICE, Action.LIST_BUCKETS, TenantRef("evil")).allowed


def test_admin_actions_need_the_admin_role_in_the_same_tenant(authz: Authorizer) -> None:
    admin = PrincipalRef("acme", "root", roles=("admin",))
    assert not authz.authorize(ALICE, Action.MANAGE_KEYS, TenantRef("acme")).allowed
    decision = authz.authorize(admin, Action.MANAGE_KEYS, TenantRef("acme"))
    assert decision.allowed
    assert decision.policy_ids == ("tenant-admin",)
    assert not authz.authorize(admin, Action.MANAGE_KEYS, TenantRef("evil")).allowed


def test_every_s3_operation_maps_to_an_action_with_a_resource_kind() -> None:
    assert set(S3_OPERATIONS.values()) <= set(RESOURCE_KINDS)
    assert S3_OPERATIONS["GetObject"] is Action.READ_OBJECT
    assert S3_OPERATIONS["ListObjectsV2"] is Action.LIST_OBJECTS


def test_resident_of_country_of_concern_is_covered_unless_operator_says_otherwise() -> None:
    assert LI.covered_person
    cleared = PrincipalRef.from_attributes("acme", "li", {"country": "CN", "covered_person": False})
    assert not cleared.covered_person
    assert PrincipalRef.from_attributes("acme", "x", {"covered_person": True}).covered_person
    assert not PrincipalRef.from_attributes("acme", "x", {"country": "DE"}).covered_person
    assert LI.holder == "org:ByteDance"
    assert ALICE.holder == "principal:acme/alice"


@pytest.mark.parametrize(
    ("attributes", "fragment"),
    [
        ({"country": "China"}, "country must be an ISO code"),
        ({"covered_person": "yes"}, "covered_person must be true or false"),
        ({"security_controls": 1}, "security_controls must be true or false"),
        ({"roles": "admin"}, "roles must be a list"),
        ({"organisation": 7}, "organisation must be a string"),
    ],
)
def test_malformed_principal_attributes_are_named(
    attributes: dict[str, object], fragment: str
) -> None:
    with pytest.raises(RequestError, match=fragment) as info:
        PrincipalRef.from_attributes("acme", "bob", attributes)
    assert "acme/bob" in info.value.message


def test_covered_person_cannot_read_us_government_related_data(authz: Authorizer) -> None:
    gov = ObjectRef("acme-data", "bases.parquet", "acme", "government.geolocation", "US", 1)
    decision = authz.authorize(LI, Action.READ_OBJECT, gov)
    assert not decision.allowed
    assert decision.policy_ids == ("doj-government-related",)
    assert "28 CFR 202.222" in decision.message
    # Not covered data for a US person of the same tenant, nor for non-US subjects.
    assert authz.authorize(ALICE, Action.READ_OBJECT, gov).allowed
    eu = ObjectRef("acme-data", "eu.parquet", "acme", "government", "DE", 1)
    assert authz.authorize(LI, Action.READ_OBJECT, eu).allowed


def test_covered_person_cannot_read_sensitive_us_data_of_undeclared_volume(
    authz: Authorizer,
) -> None:
    unknown = ObjectRef("acme-data", "dna.bam", "acme", "genomic", "US", None)
    decision = authz.authorize(LI, Action.READ_OBJECT, unknown)
    assert decision.policy_ids == ("doj-undeclared-volume",)
    assert not decision.allowed
    declared = ObjectRef("acme-data", "dna.bam", "acme", "genomic", "US", 10)
    assert authz.authorize(LI, Action.READ_OBJECT, declared).allowed  # the ledger decides
    public = ObjectRef("acme-data", "readme", "acme", "public", "US", None)
    assert authz.authorize(LI, Action.READ_OBJECT, public).allowed


def test_user_forbid_beats_every_permit(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "team.cedar",
        '@id("no-cn-copies")\n'
        '@reason("nothing stored in China may be read")\n'
        'forbid (principal, action == Action::"ReadObject", resource is Object)\n'
        'when { resource.countries.contains("CN") };\n',
    )
    authz = Authorizer.from_files([path])
    in_cn = ObjectRef("acme-data", "k", "acme", "public", countries=frozenset({"CN", "US"}))
    decision = authz.authorize(ALICE, Action.READ_OBJECT, in_cn)
    assert not decision.allowed
    assert decision.policy_ids == ("no-cn-copies",)
    assert "nothing stored in China may be read" in decision.message
    in_us = ObjectRef("acme-data", "k", "acme", "public", countries=frozenset({"US"}))
    assert authz.authorize(ALICE, Action.READ_OBJECT, in_us).allowed


def test_user_permit_shares_across_tenants_with_file_line_id(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "share.cedar",
        "// let evil read acme's public bucket\n"
        'permit (principal in Tenant::"evil", action == Action::"ReadObject", resource)\n'
        'when { resource in Bucket::"acme-public" };\n',
    )
    authz = Authorizer.from_files([path])
    shared = ObjectRef("acme-public", "logo.png", "acme", "public")
    decision = authz.authorize(MALLORY, Action.READ_OBJECT, shared)
    assert decision.allowed
    assert decision.policy_ids == ("share.cedar:2",)
    assert not authz.authorize(MALLORY, Action.WRITE_OBJECT, shared).allowed
    assert not authz.authorize(MALLORY, Action.READ_OBJECT, HEALTH).allowed


def test_context_purpose_time_and_source_ip(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "ctx.cedar",
        '@id("office-only")\n'
        "forbid (principal, action, resource)\n"
        'unless { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };\n'
        '@id("purpose-required")\n'
        'forbid (principal, action == Action::"ReadObject", resource is Object)\n'
        'when { resource.data_class == "personal.health" && context.purpose != "treatment" };\n'
        '@id("after-2030")\n'
        "forbid (principal, action, resource)\n"
        'when { context.time > datetime("2030-01-01T00:00:00Z") };\n',
    )
    authz = Authorizer.from_files([path])
    office = RequestContext(source_ip="10.1.2.3", purpose="treatment")
    assert authz.authorize(ALICE, Action.READ_OBJECT, HEALTH, office).allowed
    outside = authz.authorize(
        ALICE, Action.READ_OBJECT, HEALTH, RequestContext(source_ip="8.8.8.8", purpose="treatment")
    )
    assert outside.policy_ids == ("office-only",)
    no_ip = authz.authorize(ALICE, Action.LIST_BUCKETS, TenantRef("acme"), RequestContext())
    assert no_ip.policy_ids == ("office-only",)
    marketing = authz.authorize(
        ALICE, Action.READ_OBJECT, HEALTH, RequestContext(source_ip="10.0.0.1", purpose="ads")
    )
    assert marketing.policy_ids == ("purpose-required",)
    later = RequestContext(
        time=datetime(2031, 1, 1, tzinfo=UTC), source_ip="10.0.0.1", purpose="treatment"
    )
    assert authz.authorize(ALICE, Action.READ_OBJECT, HEALTH, later).policy_ids == ("after-2030",)


def test_bad_context_values_are_request_errors(authz: Authorizer) -> None:
    with pytest.raises(RequestError, match="not an IP address"):
        authz.authorize(ALICE, Action.READ_OBJECT, HEALTH, RequestContext(source_ip="nope"))
    with pytest.raises(RequestError, match="timezone-aware"):
        authz.authorize(
            ALICE, Action.READ_OBJECT, HEALTH, RequestContext(time=datetime(2026, 1, 1))
        )


def test_action_on_the_wrong_kind_of_resource_is_a_request_error(authz: Authorizer) -> None:
    with pytest.raises(RequestError, match="ReadObject applies to a object"):
        authz.authorize(ALICE, Action.READ_OBJECT, BucketRef("acme-data", "acme"))


def test_batch_matches_single_decisions(authz: Authorizer) -> None:
    theirs = ObjectRef("evil-data", "x", "evil", "public")
    items = [(Action.DELETE_OBJECT, HEALTH), (Action.DELETE_OBJECT, theirs)]
    batch = authz.authorize_batch(ALICE, items)
    assert [d.allowed for d in batch] == [True, False]
    assert batch == [authz.authorize(ALICE, a, r) for a, r in items]
    assert authz.authorize_batch(ALICE, []) == []


# --- policy files: readable errors ---------------------------------------------------------


def _problems(tmp_path: Path, text: str, name: str = "p.cedar") -> list[str]:
    path = _write(tmp_path, name, text)
    with pytest.raises(PolicyFileError) as info:
        Authorizer.from_files([path])
    return list(info.value.problems)


def test_parse_error_names_file_and_line(tmp_path: Path) -> None:
    text = (
        "// first a good one\n"
        "permit (principal, action, resource is Object);\n"
        "\n"
        'permit (principal, action, resource) when { resource.key == "a;b" && };\n'
    )
    assert _problems(tmp_path, text) == [f"{tmp_path / 'p.cedar'}:4: unexpected token `}}`"]


def test_missing_semicolon_gets_a_hint(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, "permit (principal, action, resource)\n")
    assert ":1:" in problem
    assert "is a ';' missing" in problem


def test_templates_are_refused_with_a_reason(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, "permit (principal == ?principal, action, resource);\n")
    assert "templates (?principal, ?resource) are not supported" in problem


def test_schema_errors_name_line_and_policy(tmp_path: Path) -> None:
    text = (
        'permit (principal, action == Action::"ReadObject", resource)\n'
        '  when { resource.colour == "red" };\n'
        '@id("typo")\n'
        'forbid (principal, action == Action::"ReadObjekt", resource);\n'
    )
    problems = _problems(tmp_path, text)
    where = tmp_path / "p.cedar"
    assert problems[0] == f"{where}:1: attribute `colour` on entity type `Object` not found"
    assert problems[1].startswith(f"{where}:3: policy typo: unrecognized action")
    assert 'Action::"ReadObjekt"' in problems[1]


def test_duplicate_ids_and_missing_files_are_all_reported(tmp_path: Path) -> None:
    dup = _write(
        tmp_path, "dup.cedar", '@id("tenant-ownership")\npermit (principal, action, resource);\n'
    )
    with pytest.raises(PolicyFileError) as info:
        Authorizer.from_files([dup, tmp_path / "missing.cedar"])
    problems = info.value.problems
    assert f"{tmp_path / 'missing.cedar'}: file not found" in problems
    assert any(
        "policy id 'tenant-ownership' is already used at defaults.cedar:" in p for p in problems
    )


def test_semicolons_inside_strings_and_comments_do_not_split(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "s.cedar",
        "// a comment; with a semicolon\n"
        '@id("semi")\n'
        'forbid (principal, action, resource is Object) when { resource.key == "a;\\"b;" };\n',
    )
    authz = Authorizer.from_files([path])
    assert set(authz.bundle.policies) >= {"semi", "tenant-ownership"}
    obj = ObjectRef("acme-data", 'a;"b;', "acme", "public")
    assert authz.authorize(ALICE, Action.READ_OBJECT, obj).policy_ids == ("semi",)


def test_without_defaults_nothing_is_permitted(tmp_path: Path) -> None:
    authz = Authorizer.from_files([], defaults=False)
    assert not authz.authorize(ALICE, Action.READ_OBJECT, HEALTH).allowed


def test_load_authorizer_caches_until_the_file_changes(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "c.cedar", '@id("one")\nforbid (principal, action, resource is Object);\n'
    )
    first = load_authorizer([path])
    assert load_authorizer([path]) is first
    path.write_text('@id("two")\nforbid (principal, action, resource is Object) when { false };\n')
    second = load_authorizer([path])
    assert second is not first
    assert "two" in second.bundle.policies
    assert second.authorize(ALICE, Action.READ_OBJECT, HEALTH).allowed


def test_policies_that_fail_at_runtime_are_reported(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "overflow.cedar",
        '@id("overflow")\n'
        "permit (principal, action, resource is Object)\n"
        "when { resource has subject_count &&\n"
        "       resource.subject_count * 9223372036854775807 > 0 };\n",
    )
    authz = Authorizer.from_files([path], defaults=False)
    decision = authz.authorize(ALICE, Action.READ_OBJECT, HEALTH)  # 500 * max: overflow
    assert not decision.allowed
    assert decision.errors
    assert "overflow" in decision.errors[0]
    assert "could not be evaluated" in decision.message
