"""Fresh identifiers: blob keys, version ids, upload ids, access key credentials.

All come from `secrets`/`uuid4`, never from counters, so two gateway processes sharing one
database (or a restored backup) can never hand out the same blob key twice.
"""

from __future__ import annotations

import secrets
import string
import uuid

BLOB_PREFIX = "blobs/"
_KEY_ID_ALPHABET = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def fresh_blob_key() -> str:
    """A never-reused blob key, sharded by its first two hex digits (`blobs/3f/3fa2...`).

    Sharding spreads keys over prefixes, which object stores partition by. One level of 256
    shards, as git does: on `fs` a deeper tree (256 x 256) made nearly every write of a bulk
    copy create a directory first (~0.2 ms each), while ext4/xfs directories hold millions of
    entries in hashed indexes, so one level stays cheap to look up at any realistic count.
    """
    h = uuid.uuid4().hex
    return f"{BLOB_PREFIX}{h[:2]}/{h}"


def new_version_id() -> str:
    return uuid.uuid4().hex


def new_upload_id() -> str:
    return secrets.token_urlsafe(36)


def new_access_key_id() -> str:
    """20 characters like AWS's (`AKIA` + 16 base32 characters)."""
    return "AKIA" + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(16))


def new_secret_key() -> str:
    """40 characters of base64 alphabet, like AWS secret access keys (238 bits)."""
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
