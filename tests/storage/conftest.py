"""Locations for storage tests: the same tests run on fs, memory and s3 (moto server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from storage_helpers import SCHEMES, free_port, make

from residency.storage import Location


@pytest.fixture
def fs_location(tmp_path: Path) -> Location:
    return make("fs-loc", "fs", root=str(tmp_path / "fs-root"))


@pytest.fixture
def s3_location(moto_server) -> Location:  # type: ignore[no-untyped-def]
    return make("s3-loc", "s3", **moto_server.location_options(moto_server.new_bucket()))


@pytest.fixture
def dead_s3_location() -> Location:
    """An s3 location whose endpoint refuses connections (nothing listens on that port)."""
    port = free_port()
    options = {
        "bucket": "gone",
        "endpoint": f"http://127.0.0.1:{port}",
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "disable_config_load": "true",
        "disable_ec2_metadata": "true",
    }
    return make("dead-s3", "s3", **options)


@pytest.fixture(params=SCHEMES)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    scheme = request.param
    if scheme == "fs":
        return make("fs-loc", "fs", root=str(tmp_path / "fs-root"))
    if scheme == "memory":
        return make("mem-loc", "memory")
    moto = request.getfixturevalue("moto_server")
    return make("s3-loc", "s3", **moto.location_options(moto.new_bucket()))


@pytest.fixture
def make_location() -> Callable[..., Location]:
    return make
