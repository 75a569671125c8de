"""`fs` listings walk the directory tree with scandir; OpenDAL's own fs lister is the oracle."""

from __future__ import annotations

import os
from pathlib import Path

import opendal
import pytest
from storage_helpers import make

from residency.storage import Location, local_io
from residency.storage.errors import LocationUnavailable


def build_tree(root: Path) -> None:
    files = {
        "a/1": 1,
        "a/2": 2,
        "a/deep/er/3": 3,
        "ab": 4,
        "b/x": 5,
        "top": 6,
        "blobs/3f/3fa2": 7,
    }
    for key, size in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"z" * size)
    (root / "empty/dir").mkdir(parents=True)
    (root / "outside").mkdir()
    (root / "outside/secret").write_bytes(b"s")
    os.symlink(root / "outside/secret", root / "a/link-to-file")
    os.symlink(root / "outside", root / "a/link-to-dir")


async def opendal_listing(root: Path, prefix: str) -> dict[str, int]:
    op = opendal.AsyncOperator("fs", root=str(root))
    found = {}
    async for entry in await op.list(prefix, recursive=True):
        if entry.metadata.is_file and entry.path.startswith(prefix):
            found[entry.path] = entry.metadata.content_length
    return found


@pytest.mark.parametrize("prefix", ["", "a/", "a", "a/deep/", "a/de", "b/x", "nothing/", "empty/"])
async def test_listing_matches_opendal(tmp_path: Path, prefix: str) -> None:
    root = tmp_path / "root"
    build_tree(root)
    location: Location = make("fs-walk", "fs", root=str(root))
    listed = {s.key: s.size async for s in location.list(prefix)}
    if prefix.endswith("/") or prefix == "":
        assert listed == await opendal_listing(root, prefix)
    # every file under the prefix (a link to a file is that file); links to directories are
    # not entered, so nothing is listed twice and a link cannot loop the walk
    expected = {
        str(p.relative_to(root)): p.stat().st_size
        for p in root.rglob("*")  # rglob does not follow directory links either
        if p.is_file() and str(p.relative_to(root)).startswith(prefix)
    }
    assert listed == expected
    assert not any(k.startswith("a/link-to-dir/") for k in listed)


async def test_listing_reports_modification_times(tmp_path: Path) -> None:
    root = tmp_path / "root"
    build_tree(root)
    location = make("fs-walk", "fs", root=str(root))
    stats = [s async for s in location.list("a/")]
    assert stats
    for s in stats:
        assert s.last_modified is not None
        assert s.last_modified.timestamp() == pytest.approx((root / s.key).stat().st_mtime)


def test_walk_pages_in_batches(tmp_path: Path) -> None:
    root = tmp_path / "root"
    build_tree(root)
    pages = list(local_io.walk(root, "fs-walk", "", batch=3))
    assert [len(p) for p in pages[:-1]] == [3] * (len(pages) - 1)
    assert 1 <= len(pages[-1]) <= 3
    assert sum(len(p) for p in pages) == 9  # 7 files, outside/secret, a/link-to-file


async def test_listing_a_missing_root_is_an_outage(tmp_path: Path) -> None:
    root = tmp_path / "root"
    build_tree(root)
    location = make("fs-walk", "fs", root=str(root))
    os.rename(root, tmp_path / "unmounted")
    with pytest.raises(LocationUnavailable):
        _ = [s async for s in location.list("")]
