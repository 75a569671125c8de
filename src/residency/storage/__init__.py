"""Bytes at locations: OpenDAL-backed stores, layers, streaming reads/writes and replication.

`open_location(cfg, facts)` gives a `Location`; `write_replicated` writes one stream to several
locations all-or-nothing. Errors are `StorageError` subclasses naming location and key.
"""

import os

# OpenDAL captures a Rust backtrace for every error when RUST_BACKTRACE is set, which makes each
# "not found" expensive; keep panics' backtraces but skip them for ordinary errors.
os.environ.setdefault("RUST_LIB_BACKTRACE", "0")

from residency.storage.blobs import BlobInfo, BlobStat, Written, validate_key
from residency.storage.checksums import Hasher
from residency.storage.connect import open_location, open_locations
from residency.storage.errors import (
    BlobNotFound,
    InvalidBlobKey,
    LocationUnavailable,
    SizeMismatch,
    StorageConfigError,
    StorageError,
    StoragePermissionDenied,
)
from residency.storage.layers import (
    FaultLayer,
    Layer,
    NativeLayer,
    RetryPolicy,
    concurrency_limit,
    default_layers,
    retry,
    timeout,
)
from residency.storage.location import BlobStream, Location
from residency.storage.replicate import replicate_stream, write_replicated
from residency.storage.store import BlobReader, BlobStore, BlobWriter
from residency.storage.streams import DEFAULT_CHUNK_SIZE
from residency.storage.whole import copy_whole, whole_copy_possible

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "BlobInfo",
    "BlobNotFound",
    "BlobReader",
    "BlobStat",
    "BlobStore",
    "BlobStream",
    "BlobWriter",
    "FaultLayer",
    "Hasher",
    "InvalidBlobKey",
    "Layer",
    "Location",
    "LocationUnavailable",
    "NativeLayer",
    "RetryPolicy",
    "SizeMismatch",
    "StorageConfigError",
    "StorageError",
    "StoragePermissionDenied",
    "Written",
    "concurrency_limit",
    "copy_whole",
    "default_layers",
    "open_location",
    "open_locations",
    "replicate_stream",
    "retry",
    "timeout",
    "validate_key",
    "whole_copy_possible",
    "write_replicated",
]
