"""The tamper-evident audit log: a hash chain in the metadata DB, with signed checkpoints.

`append` records an event in the caller's transaction; `verify` proves the chain intact or
names the first entry that is not; `iter_entries` streams it out for SIEMs.
"""

from residency.audit.batch import append_many
from residency.audit.canonical import GENESIS_HASH, CanonicalEncodingError, canonical_json
from residency.audit.checkpoints import (
    DEFAULT_CHECKPOINT_EVERY,
    checkpoint,
    configure_checkpoints,
    disable_checkpoints,
    enable_checkpoints,
    seal,
)
from residency.audit.errors import AuditError, SigningKeyError
from residency.audit.export import iter_entries, last_entries, parse_time
from residency.audit.kinds import (
    ACCESS_DENIED,
    ADMIN,
    DELETE,
    KINDS,
    MIGRATION_STEP,
    PLACEMENT,
    REFUSAL,
    THRESHOLD_HIT,
    AuditKind,
)
from residency.audit.log import append
from residency.audit.models import AuditChainHead, AuditCheckpoint
from residency.audit.signing import (
    load_or_create_signing_key,
    load_public_key,
    load_signing_key,
    public_key_pem,
)
from residency.audit.verify import Anchor, Problem, VerifyReport, verify

__all__ = [
    "ACCESS_DENIED",
    "ADMIN",
    "DEFAULT_CHECKPOINT_EVERY",
    "DELETE",
    "GENESIS_HASH",
    "KINDS",
    "MIGRATION_STEP",
    "PLACEMENT",
    "REFUSAL",
    "THRESHOLD_HIT",
    "Anchor",
    "AuditChainHead",
    "AuditCheckpoint",
    "AuditError",
    "AuditKind",
    "CanonicalEncodingError",
    "Problem",
    "SigningKeyError",
    "VerifyReport",
    "append",
    "append_many",
    "canonical_json",
    "checkpoint",
    "configure_checkpoints",
    "disable_checkpoints",
    "enable_checkpoints",
    "iter_entries",
    "last_entries",
    "load_or_create_signing_key",
    "load_public_key",
    "load_signing_key",
    "parse_time",
    "public_key_pem",
    "seal",
    "verify",
]
