"""What a request is about, as plain values, and its rendering as Cedar entities.

The gateway and the CLI describe the caller (`PrincipalRef`), the target (`TenantRef`,
`BucketRef`, `ObjectRef`) and the circumstances (`RequestContext`); `cedar_request` turns
them into the JSON Cedar evaluates. Entity ids: `Principal::"<tenant>/<name>"`,
`Tenant::"<tenant>"`, `Role::"<role>"`, `Bucket::"<bucket>"`, `Object::"<bucket>/<key>"`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from residency.access.errors import RequestError

if TYPE_CHECKING:
    from residency.meta.models import Principal, Tenant

COUNTRY = re.compile(r"[A-Z]{2}")
ROLE = re.compile(r"[\w.@+=,-]{1,64}", re.ASCII)


@cache
def countries_of_concern() -> frozenset[str]:
    """28 CFR 202.601, from the catalog (CN HK MO CU IR KP RU VE)."""
    from residency.catalog.load import load_catalog

    return load_catalog().groups["COUNTRIES_OF_CONCERN"]


@dataclass(frozen=True, slots=True)
class PrincipalRef:
    """A caller and the attributes access policies and the bulk-data ledger look at.

    `covered_person` is the effective 28 CFR 202.211 status: the stored attribute when the
    operator set one, otherwise true for residents of a country of concern (202.211(a)(4)).
    """

    tenant: str
    name: str
    country: str = ""
    covered_person: bool = False
    organisation: str = ""
    security_controls: bool = False
    roles: tuple[str, ...] = ()

    @property
    def uid(self) -> str:
        return f"{self.tenant}/{self.name}"

    @property
    def holder(self) -> str:
        """Whose volume the ledger counts: the organisation when known, else the principal."""
        return f"org:{self.organisation}" if self.organisation else f"principal:{self.uid}"

    @classmethod
    def from_attributes(
        cls, tenant: str, name: str, attributes: Mapping[str, Any] | None
    ) -> PrincipalRef:
        """Read the `attributes` JSON of a meta `Principal`; malformed values are errors."""
        attrs = dict(attributes or {})
        who = f"principal {tenant}/{name}"
        country = attrs.get("country") or ""
        if not isinstance(country, str) or (country and not COUNTRY.fullmatch(country)):
            raise RequestError(
                f"{who}: attribute country must be an ISO code like 'US', not {country!r}"
            )
        flags: dict[str, bool] = {}
        for flag in ("covered_person", "security_controls"):
            value = attrs.get(flag)
            if value is not None and not isinstance(value, bool):
                raise RequestError(f"{who}: attribute {flag} must be true or false, not {value!r}")
            flags[flag] = bool(value)
        covered = attrs.get("covered_person")
        if covered is None:
            flags["covered_person"] = country in countries_of_concern()
        organisation = attrs.get("organisation") or ""
        if not isinstance(organisation, str):
            raise RequestError(f"{who}: attribute organisation must be a string")
        roles = attrs.get("roles") or []
        if not isinstance(roles, list) or not all(
            isinstance(r, str) and ROLE.fullmatch(r) for r in roles
        ):
            raise RequestError(f"{who}: attribute roles must be a list of role names")
        return cls(
            tenant=tenant,
            name=name,
            country=country,
            covered_person=flags["covered_person"],
            organisation=organisation,
            security_controls=flags["security_controls"],
            roles=tuple(roles),
        )

    @classmethod
    def from_meta(cls, principal: Principal, tenant: Tenant) -> PrincipalRef:
        return cls.from_attributes(tenant.name, principal.name, principal.attributes)


@dataclass(frozen=True, slots=True)
class TenantRef:
    """A tenant as a resource (ListBuckets, admin actions)."""

    name: str

    @property
    def tenant(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"tenant {self.name}"


@dataclass(frozen=True, slots=True)
class BucketRef:
    name: str
    tenant: str

    def describe(self) -> str:
        return f"bucket {self.name}"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An object (existing, or about to be written) with its classification.

    `countries` are the countries of the locations that hold it (or were chosen for it);
    `version_id` lets the ledger count one version once per window however often it is read.
    """

    bucket: str
    key: str
    tenant: str
    data_class: str
    subject: str | None = None
    subject_count: int | None = None
    countries: frozenset[str] = field(default_factory=frozenset)
    version_id: str | None = None

    def describe(self) -> str:
        return f"object {self.bucket}/{self.key}"


Resource = TenantRef | BucketRef | ObjectRef


@dataclass(frozen=True, slots=True)
class RequestContext:
    """When, from where and why: Cedar's `context` (time, source_ip, purpose)."""

    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    source_ip: str | None = None
    purpose: str = ""

    def check(self) -> None:
        """Raise `RequestError` for a context `to_cedar` would refuse, without rendering it
        (a cached decision still refuses a bad context, at a fraction of the cost)."""
        if self.time.tzinfo is None:
            raise RequestError("request time must be timezone-aware (UTC)")
        if self.source_ip:
            _ip_text(self.source_ip)

    def to_cedar(self) -> dict[str, Any]:
        self.check()
        stamp = self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        ctx: dict[str, Any] = {
            "time": {"__extn": {"fn": "datetime", "arg": stamp}},
            "purpose": self.purpose,
        }
        if self.source_ip:
            ctx["source_ip"] = {"__extn": {"fn": "ip", "arg": _ip_text(self.source_ip)}}
        return ctx


@lru_cache(maxsize=1024)
def _ip_text(value: str) -> str:
    """An IP address in canonical form; `RequestError` if it is not one (cached: a gateway
    sees the same client addresses over and over; refusals are not cached)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise RequestError(f"source_ip {value!r} is not an IP address") from None


def resource_kind(resource: Resource) -> str:
    if isinstance(resource, ObjectRef):
        return "object"
    if isinstance(resource, BucketRef):
        return "bucket"
    return "tenant"


def resource_uid(resource: Resource) -> dict[str, str]:
    if isinstance(resource, ObjectRef):
        return {"type": "Object", "id": f"{resource.bucket}/{resource.key}"}
    if isinstance(resource, BucketRef):
        return {"type": "Bucket", "id": resource.name}
    return {"type": "Tenant", "id": resource.name}


def _ref(kind: str, ident: str) -> dict[str, Any]:
    return {"__entity": {"type": kind, "id": ident}}


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


# Entity slices are rebuilt for every request; the parts that repeat (a caller, its tenant,
# a bucket) are rendered to JSON once and reused. Keys are (type, id) so a batch can merge
# slices without duplicating an entity (Cedar rejects duplicate uids).
EntityKey = tuple[str, str]


@lru_cache(maxsize=1024)
def _tenant_json(tenant: str) -> str:
    return _json({"uid": {"type": "Tenant", "id": tenant}, "attrs": {}, "parents": []})


@lru_cache(maxsize=4096)
def _principal_json(principal: PrincipalRef) -> tuple[tuple[EntityKey, str], ...]:
    out: list[tuple[EntityKey, str]] = [
        (("Role", r), _json({"uid": {"type": "Role", "id": r}, "attrs": {}, "parents": []}))
        for r in principal.roles
    ]
    body = {
        "uid": {"type": "Principal", "id": principal.uid},
        "attrs": {
            "tenant": _ref("Tenant", principal.tenant),
            "name": principal.name,
            "country": principal.country,
            "covered_person": principal.covered_person,
            "organisation": principal.organisation,
            "security_controls": principal.security_controls,
        },
        "parents": [{"type": "Tenant", "id": principal.tenant}]
        + [{"type": "Role", "id": r} for r in principal.roles],
    }
    out.append((("Principal", principal.uid), _json(body)))
    return tuple(out)


@lru_cache(maxsize=4096)
def _bucket_json(bucket: str, tenant: str) -> str:
    return _json(
        {
            "uid": {"type": "Bucket", "id": bucket},
            "attrs": {"tenant": _ref("Tenant", tenant), "name": bucket},
            "parents": [{"type": "Tenant", "id": tenant}],
        }
    )


def entity_slice(
    principal: PrincipalRef, resource: Resource, doj_category: str = ""
) -> dict[EntityKey, str]:
    """The entities one request needs, as JSON fragments: caller, tenants, roles, target chain.

    `doj_category` is the 28 CFR 202 category of an object's class ("" if none).
    """
    out: dict[EntityKey, str] = {
        ("Tenant", t): _tenant_json(t) for t in (principal.tenant, resource.tenant)
    }
    out.update(_principal_json(principal))
    if isinstance(resource, BucketRef | ObjectRef):
        bucket = resource.name if isinstance(resource, BucketRef) else resource.bucket
        out["Bucket", bucket] = _bucket_json(bucket, resource.tenant)
    if isinstance(resource, ObjectRef):
        attrs: dict[str, Any] = {
            "tenant": _ref("Tenant", resource.tenant),
            "bucket": _ref("Bucket", resource.bucket),
            "key": resource.key,
            "data_class": resource.data_class,
            "doj_category": doj_category,
            "subject": resource.subject or "",
            "countries": sorted(resource.countries),
        }
        if resource.subject_count is not None:
            attrs["subject_count"] = resource.subject_count
        uid = resource_uid(resource)
        out["Object", uid["id"]] = _json(
            {"uid": uid, "attrs": attrs, "parents": [{"type": "Bucket", "id": resource.bucket}]}
        )
    return out


def entities_json(fragments: dict[EntityKey, str]) -> str:
    return "[" + ",".join(fragments.values()) + "]"
