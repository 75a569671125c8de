"""Opening locations: schemes, options passed through to OpenDAL, and clean config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from storage_helpers import agen, collect, config, facts, make

from residency.config import Settings
from residency.storage import (
    FaultLayer,
    LocationUnavailable,
    RetryPolicy,
    StorageConfigError,
    concurrency_limit,
    open_location,
    open_locations,
    retry,
    timeout,
    write_replicated,
)


def test_fs_root_is_created_and_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    loc = make("local", "fs", root="deep/er/root")
    assert (tmp_path / "deep/er/root").is_dir()
    assert loc.name == "local"
    assert loc.config.scheme == "fs"
    assert loc.facts.country == "US"


async def test_fs_blobs_land_under_root(tmp_path: Path) -> None:
    loc = make("local", "fs", root=str(tmp_path / "r"))
    await loc.write("a/b/c.bin", agen([b"hello"]))
    assert (tmp_path / "r/a/b/c.bin").read_bytes() == b"hello"


def test_fs_without_root_is_a_config_error() -> None:
    with pytest.raises(StorageConfigError, match="needs option 'root'") as err:
        make("local", "fs")
    assert "'local'" in str(err.value)


def test_fs_root_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageConfigError, match="cannot create root directory"):
        make("local", "fs", root=str(blocker / "sub"))


@pytest.mark.parametrize(
    ("scheme", "options", "complaint"),
    [
        ("s3", {}, "bucket"),
        ("s3", {"bucket": "b"}, "region"),
        ("s3", {"bucket": "b", "region": "x", "enable_virtual_host_style": "maybe"}, "maybe"),
        ("oss", {}, "bucket"),
        ("oss", {"bucket": "b"}, "endpoint"),
        ("oss", {"bucket": "b", "endpoint": "::::"}, "endpoint"),
        ("cos", {}, "bucket"),
        ("cos", {"bucket": "b"}, "endpoint"),
        ("obs", {}, "bucket"),
        ("obs", {"bucket": "b"}, "endpoint"),
        ("azblob", {}, "container"),
        ("azblob", {"container": "c"}, "endpoint"),
        (
            "azblob",
            {"container": "c", "endpoint": "http://x", "account_name": "a", "account_key": "!!"},
            "account_key",
        ),
        ("gcs", {}, "bucket"),
    ],
)
def test_bad_cloud_options_are_clean_config_errors(
    scheme: str, options: dict[str, str], complaint: str
) -> None:
    with pytest.raises(StorageConfigError) as err:
        make("cloud-loc", scheme, **options)
    message = str(err.value)
    assert complaint in message
    assert f"cannot open {scheme} location" in message
    assert "'cloud-loc'" in message
    assert "Backtrace" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("scheme", "options"),
    [
        ("oss", {"bucket": "b", "endpoint": "http://127.0.0.1:9"}),
        ("cos", {"bucket": "b", "endpoint": "http://127.0.0.1:9"}),
        ("obs", {"bucket": "b", "endpoint": "http://127.0.0.1:9"}),
        ("azblob", {"container": "c", "endpoint": "http://127.0.0.1:9", "account_name": "a"}),
        ("gcs", {"bucket": "b", "endpoint": "http://127.0.0.1:9", "allow_anonymous": "true"}),
    ],
)
def test_cloud_schemes_build_from_passed_through_options(
    scheme: str, options: dict[str, str]
) -> None:
    loc = make("cloud-loc", scheme, **options)
    assert loc.config.options == options


def test_facts_must_belong_to_the_location() -> None:
    with pytest.raises(StorageConfigError, match="facts are for location 'other'"):
        open_location(config("mine", "memory"), facts("other"))


async def test_explicit_layers_replace_the_defaults() -> None:
    loc = open_location(config("m", "memory"), facts("m"), layers=[FaultLayer(fail=["stat"])])
    await loc.write("k", agen([b"v"]))
    with pytest.raises(LocationUnavailable, match="injected fault in stat"):
        await loc.stat("k")


async def test_native_layers_stack_under_python_layers(tmp_path: Path) -> None:
    shared_limit = concurrency_limit(2)
    layers = [timeout(control=5, io=5), retry(RetryPolicy(max_times=1)), shared_limit]
    one = open_location(config("a", "fs", root=str(tmp_path / "a")), facts("a"), layers=layers)
    two = open_location(config("b", "fs", root=str(tmp_path / "b")), facts("b"), layers=layers)
    info = await write_replicated([one, two], "k", agen([b"payload"] * 3))
    assert info.size == 21
    assert await collect(one.read("k")) == await collect(two.read("k")) == b"payload" * 3


async def test_open_locations_uses_the_catalog(tmp_path: Path) -> None:
    from residency.catalog import load_catalog

    settings = Settings(
        data_dir=tmp_path,
        locations=[
            {
                "name": "us-east",
                "provider": "aws",
                "region": "us-east-1",
                "scheme": "fs",
                "options": {"root": str(tmp_path / "us")},
            },
            {
                "name": "hangzhou",
                "provider": "alibaba",
                "region": "cn-hangzhou",
                "scheme": "memory",
            },
        ],
    )
    locations = open_locations(settings, load_catalog())
    assert sorted(locations) == ["hangzhou", "us-east"]
    assert locations["hangzhou"].facts.country == "CN"
    assert locations["us-east"].facts.country == "US"
    await locations["us-east"].write("k", agen([b"v"]))
    assert await collect(locations["us-east"].read("k")) == b"v"
