"""Copy a small blob whole, in one worker-thread hop: read, hash, write everywhere, check sizes.

A blob that fits in one chunk gains nothing from streaming (memory is the same one chunk) but
pays for it: a streamed copy is a dozen awaits on OpenDAL's runtime, each a round trip through
the event loop. Here a worker thread does the whole copy with OpenDAL's blocking operator,
which releases the GIL while it waits on IO: one GET at the source (no HEAD first), one PUT
and one stat per destination. Like `write_replicated` it is all or nothing: on any failure
the destinations written so far are deleted again.

On an `fs` destination with a `SyncBarrier` (see `local_io`) the write is not fsynced: the
caller makes it durable with the barrier before it records the copy, one flush for many blobs.

Only plain OpenDAL stores qualify (`whole_copy_possible`): a Python layer (fault injection, a
test's logger) must see every call, so those locations take the streaming path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from residency.storage import local_io
from residency.storage.blobs import Written, validate_key
from residency.storage.checksums import Algorithm, Hasher
from residency.storage.errors import SizeMismatch, StorageError
from residency.storage.opendal_store import OpendalStore

if TYPE_CHECKING:
    from residency.storage.location import Location

__all__ = ["copy_whole", "whole_copy_possible"]


def whole_copy_possible(locations: Sequence[Location]) -> bool:
    """True if every location is a bare OpenDAL store (no Python layer in between)."""
    return all(isinstance(loc.store, OpendalStore) for loc in locations)


def copy_whole(
    source: Location,
    src_key: str,
    destinations: Sequence[Location],
    key: str,
    *,
    size: int,
    algorithms: Sequence[Algorithm],
    barriers: Mapping[str, local_io.SyncBarrier] | None = None,
) -> Written:
    """Blocking: copy `src_key` (recorded as `size` bytes) to `key` at every destination.

    Call it from a worker thread. Raises `StorageError`s naming location and key; a source
    that is not `size` bytes long raises `SizeMismatch` before anything is written. The copy
    is durable when this returns, except at destinations named in `barriers`: there it is
    durable once that barrier's `sync()` has returned.
    """
    src = _store(source)
    dsts = [_store(loc) for loc in destinations]
    validate_key(src_key, location=source.name)
    for loc in destinations:
        validate_key(key, location=loc.name)
    data = src.read_bytes(src_key)
    if len(data) != size:
        raise SizeMismatch(expected=size, actual=len(data), location=source.name, key=src_key)
    hasher = Hasher(algorithms)
    hasher.update(data)
    written: list[OpendalStore] = []
    try:
        for dst in dsts:
            written.append(dst)
            dst.write_bytes(key, data, barrier=barriers.get(dst.name) if barriers else None)
            stored = dst.size_of(key)
            if stored != size:
                raise StorageError(
                    f"stored {stored} bytes, wrote {size}", location=dst.name, key=key
                )
    except BaseException:
        for dst in written:
            dst.discard(key)
        raise
    return Written(hasher.size, hasher.digests())


def _store(location: Location) -> OpendalStore:
    store = location.store
    if not isinstance(store, OpendalStore):
        raise TypeError(f"{location.name} has Python layers; copy it as a stream")
    return store
