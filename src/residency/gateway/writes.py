"""The residency write path shared by PUT, copy and multipart.

classify -> `policy.evaluate` over the configured locations -> refuse (403 ResidencyViolation,
audited) before a byte of the body is read, or -> register blob intents -> stream the body to
every chosen location in parallel -> commit the version and its audit entry in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from residency.audit.kinds import PLACEMENT, REFUSAL
from residency.gateway import authorize, errors
from residency.gateway.context import RequestContext
from residency.gateway.state import Gateway
from residency.meta.models import Bucket
from residency.meta.repo.blobs import BlobRef, add_garbage, remove_intents
from residency.meta.specs import VersionAttrs
from residency.meta.writes import fresh_blob_key, register_fresh_intents
from residency.policy import (
    Classification,
    ClassificationError,
    ClassificationRequired,
    Decision,
    ObjectAttrs,
    Policy,
    PolicyError,
    classify,
    evaluate,
)
from residency.policy.effective import effective_policy
from residency.storage import BlobInfo, write_replicated
from residency.storage.errors import SizeMismatch, StorageError

log = logging.getLogger("residency.gateway")

CLASS_KEY = "residency-class"
SUBJECT_KEY = "residency-subject"
COUNT_KEY = "residency-subjects"


def policy_for(gw: Gateway, bucket: Bucket) -> Policy:
    """The gateway's policy narrowed by the bucket's (a preset named at creation).

    A bucket policy that no longer loads (an operator's file moved away) refuses every write
    to the bucket: what it would have added is unknown, so nothing is placed without it.
    """
    try:
        return effective_policy(gw.policy, bucket.policy)
    except PolicyError as exc:
        raise errors.residency_violation(
            f"the policy of bucket {bucket.name} ({bucket.policy}) cannot be loaded, so no write "
            f"is placed until the operator fixes it (residency bucket policy): {exc}"
        ) from None


@dataclass(frozen=True, slots=True)
class WritePlan:
    """Where a new version goes and why: the classification and the policy decision."""

    classification: Classification
    decision: Decision

    @property
    def locations(self) -> tuple[str, ...]:
        return self.decision.chosen

    def response_headers(self) -> dict[str, str]:
        return {
            "x-residency-locations": ",".join(self.decision.chosen),
            "x-residency-rule": self.decision.rule or "",
            "x-residency-class": self.classification.data_class,
            **(
                {"x-residency-subject": self.classification.subject}
                if self.classification.subject
                else {}
            ),
        }

    def version_attrs(
        self,
        *,
        content_type: str | None,
        user_metadata: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> VersionAttrs:
        """What the committed version records about this decision and the request."""
        c = self.classification
        return VersionAttrs(
            data_class=c.data_class,
            subject=c.subject,
            subject_count=c.subject_count,
            rule=self.decision.rule,
            content_type=content_type,
            user_metadata=user_metadata,
            tags=tags,
        )

    def audit_detail(self, **extra: Any) -> dict[str, Any]:
        c = self.classification
        return {
            "data_class": c.data_class,
            "subject": c.subject,
            "subject_count": c.subject_count,
            "classified_by": c.source,
            **self.decision.to_dict(),
            **extra,
        }


async def decide(
    ctx: RequestContext,
    bucket: Bucket,
    key: str,
    *,
    user_metadata: Mapping[str, str],
    tags: Mapping[str, str],
    inherited: Inherited | None = None,
) -> WritePlan:
    """Classify and evaluate; a refusal is audited and raised before any body is read.

    A copy passes the source version's stored classification as `inherited`: it counts as
    explicit, so a class that came from the source bucket's default or a classifier travels
    with the bytes; only values the request itself states replace it.
    """
    gw = ctx.gw
    policy = policy_for(gw, bucket)
    fallback = {
        CLASS_KEY: inherited.data_class if inherited else None,
        SUBJECT_KEY: inherited.subject if inherited else None,
        COUNT_KEY: str(inherited.subject_count)
        if inherited and inherited.subject_count is not None
        else None,
    }

    def explicit(name: str) -> str | None:
        return user_metadata.get(name) or tags.get(name) or fallback[name]

    target = f"s3://{bucket.name}/{key}"
    try:
        classification = classify(
            policy,
            key=key,
            explicit_class=explicit(CLASS_KEY),
            explicit_subject=explicit(SUBJECT_KEY),
            explicit_count=explicit(COUNT_KEY),
            bucket_class=bucket.default_class,
            bucket_subject=bucket.default_subject,
            bucket=bucket.name,
        )
    except ClassificationRequired as exc:
        await authorize.check_object(ctx, bucket, key, None)
        await _audit_refusal(ctx, target, {"reason": str(exc), "policy": policy.name})
        raise errors.residency_violation(str(exc)) from None
    except ClassificationError as exc:
        raise errors.invalid_argument(str(exc)) from None
    decision = _evaluate(ctx, policy, bucket, key, classification)
    placement = WritePlan(classification, decision)
    # Access first: a caller who may not write here learns nothing about the residency rules.
    await authorize.check_object(ctx, bucket, key, classification, locations=decision.chosen)
    if not decision.ok or not decision.chosen:
        await _audit_refusal(ctx, target, placement.audit_detail(policy=policy.name))
        raise errors.residency_violation(decision.message, rule=decision.rule)
    return placement


def _evaluate(
    ctx: RequestContext, policy: Policy, bucket: Bucket, key: str, what: Classification | Inherited
) -> Decision:
    attrs = ObjectAttrs(
        data_class=what.data_class,
        subject=what.subject,
        subject_count=what.subject_count,
        tenant=ctx.identity.tenant,
        bucket=bucket.name,
        key=key,
    )
    return evaluate(policy, attrs, [loc.facts for loc in ctx.gw.locations.values()])


@dataclass(frozen=True, slots=True)
class Inherited:
    """The classification a copy's bytes bring from their source version."""

    data_class: str
    subject: str | None
    subject_count: int | None


async def recheck(
    ctx: RequestContext,
    bucket: Bucket,
    key: str,
    what: Inherited,
    locations: Sequence[str],
    *,
    doing: str,
) -> None:
    """Bytes about to go to `locations` on an earlier decision: are they still allowed now?

    Multipart parts are written where CreateMultipartUpload decided; the policy may have
    changed since, and a part copied from another object brings that object's class. Either
    way the current effective policy decides, and a refusal is audited before any byte moves.
    """
    policy = policy_for(ctx.gw, bucket)
    decision = _evaluate(ctx, policy, bucket, key, what)
    why = {e.location: e.reason for e in decision.exclusions}
    bad = [loc for loc in locations if loc not in decision.allowed]
    if not bad:
        return
    reasons = "; ".join(f"{loc}: {why.get(loc, 'not allowed now')}" for loc in bad)
    message = (
        f"{doing} would put {what.data_class} data (subject {what.subject or 'unknown'}) at "
        f"{', '.join(bad)}, which policy {policy.name} does not allow: {reasons}"
    )
    detail = {"reason": message, "policy": policy.name, **decision.to_dict()}
    await _audit_refusal(ctx, f"s3://{bucket.name}/{key}", detail)
    raise errors.residency_violation(message, rule=decision.rule)


async def _audit_refusal(ctx: RequestContext, target: str, detail: dict[str, Any]) -> None:
    await ctx.gw.db.write(ctx.audit, REFUSAL, target, detail)


async def abandon_unwritten(session: AsyncSession, refs: Sequence[BlobRef]) -> None:
    """A write failed: its blobs whose intents are still there become garbage now.

    A blob without its intent is either committed (a commit removes the intents in the same
    transaction) or already reclaimed by the sweep: neither may be marked garbage. This keeps
    a commit that finished in the writer thread after its request was cancelled from having
    its live blob deleted by the sweep.
    """
    missing = await remove_intents(session, refs)
    unwritten = [ref for ref in refs if ref not in missing]
    if unwritten:
        await add_garbage(session, unwritten, reason="write failed")


def storage_unavailable(exc: StorageError) -> errors.S3Error:
    return errors.S3Error("ServiceUnavailable", f"A storage location failed: {exc}", 503)


async def write_blob(
    gw: Gateway,
    locations: Sequence[str],
    chunks: AsyncIterable[bytes],
    *,
    expect_size: int | None = None,
) -> tuple[str, BlobInfo]:
    """Write a fresh blob to every location (intents first); on failure nothing is left live."""
    blob_key = fresh_blob_key()
    refs = [(name, blob_key) for name in locations]
    await gw.db.write(register_fresh_intents, refs)
    try:
        info = await write_replicated(
            [gw.locations[name] for name in locations], blob_key, chunks, expect_size=expect_size
        )
    except BaseException as exc:
        try:
            await gw.db.write(abandon_unwritten, refs)
        except Exception:  # the sweep still finds the stale intents
            log.exception("could not record the failed write of %s as garbage", blob_key)
        if isinstance(exc, SizeMismatch):
            raise errors.incomplete_body(str(exc)) from exc
        if isinstance(exc, StorageError):
            raise storage_unavailable(exc) from exc
        raise
    return blob_key, info


async def audit_placement(
    session: Any, ctx: RequestContext, target: str, placement: WritePlan, **extra: Any
) -> None:
    """In the caller's transaction, right before it commits the version."""
    await ctx.audit(
        session,
        PLACEMENT,
        target,
        placement.audit_detail(**extra),
    )
