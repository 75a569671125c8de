"""Locations that are down: dead endpoints, vanished roots, missing buckets, denied access."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_helpers import agen, collect, free_port, make, wait_http

from residency.storage import (
    FaultLayer,
    InvalidBlobKey,
    Location,
    LocationUnavailable,
    NativeLayer,
    SizeMismatch,
    StorageError,
    StoragePermissionDenied,
    retry,
)


async def test_dead_endpoint_is_unavailable_on_every_operation(dead_s3_location: Location):
    loc = dead_s3_location
    with pytest.raises(LocationUnavailable) as err:
        await loc.stat("k")
    assert "'dead-s3'" in str(err.value)
    assert "'k'" in str(err.value)
    assert "Connection refused" in str(err.value) or "connect" in str(err.value)
    assert "Backtrace" not in str(err.value)
    with pytest.raises(LocationUnavailable):
        await loc.open("k")
    with pytest.raises(LocationUnavailable):
        await loc.write("k", agen([b"some bytes"]))
    with pytest.raises(LocationUnavailable):
        await loc.delete("k")
    with pytest.raises(LocationUnavailable):
        await collect_list(loc, "")
    with pytest.raises(LocationUnavailable):
        await loc.check()


async def collect_list(loc: Location, prefix: str) -> list[str]:
    return [s.key async for s in loc.list(prefix)]


async def test_deleted_fs_root_is_unavailable_not_empty(tmp_path: Path) -> None:
    root = tmp_path / "root"
    loc = make("local", "fs", root=str(root))
    await loc.write("k", agen([b"data"]))
    await loc.check()
    shutil.rmtree(root)

    with pytest.raises(LocationUnavailable, match=r"root directory .* is missing"):
        await loc.stat("k")
    with pytest.raises(LocationUnavailable):
        await loc.open("k")
    with pytest.raises(LocationUnavailable):
        await loc.check()
    with pytest.raises(LocationUnavailable):
        await collect_list(loc, "")
    with pytest.raises(LocationUnavailable):
        await loc.write("k2", agen([b"data"]))
    assert not root.exists(), "a write must not recreate a vanished root"


async def test_missing_bucket_fails_check(moto_server) -> None:  # type: ignore[no-untyped-def]
    loc = make("s3-loc", "s3", **moto_server.location_options("no-such-bucket-here"))
    with pytest.raises(LocationUnavailable, match="NoSuchBucket"):
        await loc.check()


@pytest.fixture(scope="module")
def strict_moto() -> Iterator[str]:
    """A moto server that enforces IAM auth: unknown access keys get 403 InvalidAccessKeyId."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    proc = subprocess.Popen(
        [shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(endpoint, proc=proc)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


async def test_rejected_credentials_are_permission_denied(strict_moto: str) -> None:
    loc = make(
        "strict",
        "s3",
        bucket="bkt",
        endpoint=strict_moto,
        region="us-east-1",
        access_key_id="AKIANOTKNOWN",
        secret_access_key="nope",
        disable_config_load="true",
        disable_ec2_metadata="true",
    )
    with pytest.raises(StoragePermissionDenied) as err:
        await loc.stat("k")
    assert "'strict'" in str(err.value)
    with pytest.raises(StoragePermissionDenied, match="InvalidAccessKeyId"):
        await loc.open("k")
    with pytest.raises(StoragePermissionDenied, match="InvalidAccessKeyId"):
        await loc.write("k", agen([b"x"]))


async def test_fault_layer_fails_chosen_operations(tmp_path: Path) -> None:
    loc = make("local", "fs", root=str(tmp_path / "r")).layer(FaultLayer(fail=["stat", "check"]))
    await loc.write("k", agen([b"fine"]))
    assert await collect(loc.read("k")) == b"fine"
    with pytest.raises(LocationUnavailable, match="injected fault in stat"):
        await loc.stat("k")
    with pytest.raises(LocationUnavailable, match="injected fault in check"):
        await loc.check()


async def test_native_layers_must_sit_under_python_layers(tmp_path: Path) -> None:
    loc = make("local", "fs", root=str(tmp_path / "r")).layer(FaultLayer())
    with pytest.raises(TypeError, match="apply it before Python layers"):
        loc.layer(retry())
    assert isinstance(retry(), NativeLayer)


@pytest.mark.parametrize(
    "error",
    [
        LocationUnavailable("down", location="loc", key="k"),
        SizeMismatch(expected=10, actual=3, key="k"),
        InvalidBlobKey("bad", location="loc", key="a//b"),
    ],
)
def test_errors_survive_pickling(error: StorageError) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert (again.location, again.key) == (error.location, error.key)
    if isinstance(error, SizeMismatch):
        assert (again.expected, again.actual) == (10, 3)
