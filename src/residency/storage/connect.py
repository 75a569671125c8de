"""Open configured locations: scheme + options -> OpenDAL operator -> layered store -> Location."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import opendal

from residency.catalog.facts import LocationFacts
from residency.config import LocationConfig, Settings
from residency.storage.errors import StorageConfigError, describe_opendal_error
from residency.storage.layers import Layer, default_layers
from residency.storage.location import Location
from residency.storage.opendal_store import OpendalStore
from residency.storage.store import BlobStore
from residency.storage.streams import DEFAULT_CHUNK_SIZE

__all__ = ["PART_SIZE", "FactsSource", "open_location", "open_locations"]

# Object stores upload a streamed write as multipart parts of this size (S3's minimum is 5 MiB);
# each open writer buffers one part.
PART_SIZE = 8 << 20
_LOCAL_SCHEMES = frozenset({"fs", "memory"})


class FactsSource(Protocol):
    """What `open_locations` needs from the catalog."""

    def facts_for(self, cfg: LocationConfig) -> LocationFacts: ...


def open_location(
    cfg: LocationConfig,
    facts: LocationFacts,
    *,
    layers: Sequence[Layer] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Location:
    """Bind a configured location to its bytes.

    `cfg.options` go to OpenDAL unchanged (an `fs` root is made absolute and created).
    `layers` wrap the store innermost first; by default a timeout and a quick retry with
    backoff (`layers.default_layers()`). Raises `StorageConfigError` for a bad scheme/options.
    """
    if facts.name != cfg.name:
        raise StorageConfigError(
            f"facts are for location {facts.name!r}, not this one", location=cfg.name
        )
    store: BlobStore = _open_store(cfg)
    for layer in default_layers() if layers is None else layers:
        store = layer.layer(store)
    return Location(cfg, facts, store, chunk_size=chunk_size)


def open_locations(settings: Settings, catalog: FactsSource) -> dict[str, Location]:
    """Every configured location by name, with facts from the catalog."""
    return {cfg.name: open_location(cfg, catalog.facts_for(cfg)) for cfg in settings.locations}


def _open_store(cfg: LocationConfig) -> OpendalStore:
    options = dict(cfg.options)
    fs_root: Path | None = None
    if cfg.scheme == "fs":
        root = options.get("root", "").strip()
        if not root:
            raise StorageConfigError(
                "an fs location needs option 'root' (the directory that holds its blobs)",
                location=cfg.name,
            )
        fs_root = Path(root).expanduser().resolve()
        try:
            fs_root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageConfigError(
                f"cannot create root directory {fs_root}: {exc.strerror or exc}",
                location=cfg.name,
            ) from exc
        options["root"] = str(fs_root)
    try:
        operator = opendal.AsyncOperator(cfg.scheme, **options)
    except BaseException as exc:
        # A Rust panic surfaces as pyo3's PanicException, a BaseException; bad options must
        # still read as a config error, not a crash.
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        raise StorageConfigError(
            f"cannot open {cfg.scheme} location: {describe_opendal_error(exc)}",
            location=cfg.name,
        ) from exc
    part_size = None if cfg.scheme in _LOCAL_SCHEMES else PART_SIZE
    return OpendalStore(cfg.name, operator, fs_root=fs_root, part_size=part_size)
