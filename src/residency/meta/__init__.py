"""The metadata DB: tenants, keys, buckets, object versions and where their blobs live.

`Database` owns the engine and sessions; `models` the schema; `repo.*` the queries by topic;
`writes` the crash-safe write path (intents, atomic commit, garbage).
"""

from residency.meta.db import Database
from residency.meta.errors import MetaError

__all__ = ["Database", "MetaError"]
