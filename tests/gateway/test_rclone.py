"""rclone (Debian's build) against the gateway, configured only through environment variables.

rclone is the reference for "any S3 client works unchanged": it uses multipart uploads with its
own MD5 metadata, relies on listing for sync/check, and compares ETags with local MD5s. A missing
rclone is a broken test environment, so it fails rather than skips.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from testkit import tree_digest, write_random

RCLONE = "/usr/bin/rclone"
MIB = 1024 * 1024
BIG_SIZE = 12 * MIB  # three parts with the 5 MiB cutoff/chunk size below
MULTIPART_FLAGS = ("--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")
# Personal data of Russian citizens must be stored in Russia first (152-FZ as amended by
# 242-FZ); the test gateway has no Russian location, so the default policy refuses it.
FORBIDDEN_HEADERS = (
    "--header-upload",
    "x-amz-meta-residency-class: personal",
    "--header-upload",
    "x-amz-meta-residency-subject: RU",
)

Rclone = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def rclone_env(gateway: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A remote named `res` defined only by env vars; no user config file is read."""
    assert os.access(RCLONE, os.X_OK), f"{RCLONE} is required (apt-get install rclone)"
    home = tmp_path_factory.mktemp("rclone-home")
    # Inherited AWS_*/RCLONE_* settings (e.g. AWS_CA_BUNDLE) would change what is under test.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    return {
        **inherited,
        **gateway.env(),
        "HOME": str(home),
        "RCLONE_CONFIG": str(home / "rclone.conf"),  # absent on purpose
        "RCLONE_CONFIG_RES_TYPE": "s3",
        "RCLONE_CONFIG_RES_PROVIDER": "Other",
        "RCLONE_CONFIG_RES_ENV_AUTH": "false",
        "RCLONE_CONFIG_RES_ACCESS_KEY_ID": gateway.access_key,
        "RCLONE_CONFIG_RES_SECRET_ACCESS_KEY": gateway.secret_key,
        "RCLONE_CONFIG_RES_ENDPOINT": gateway.endpoint,
        "RCLONE_CONFIG_RES_REGION": gateway.region,
        "RCLONE_CONFIG_RES_FORCE_PATH_STYLE": "true",
    }


@pytest.fixture
def rclone(rclone_env: dict[str, str]) -> Rclone:
    """Run rclone; no retries so that a refusal is reported once and quickly."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [RCLONE, "--retries", "1", "--low-level-retries", "1", "--contimeout", "10s", *args],
            env=rclone_env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


@pytest.fixture
def bucket(gateway: Any) -> str:
    name = f"rc-{uuid.uuid4().hex[:12]}"
    gateway.s3().create_bucket(Bucket=name)
    return name


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"rclone exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


def make_tree(root: Path) -> dict[str, str]:
    """Small files in nested dirs, an empty file, a name with spaces, and one multipart file."""
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "readme.txt").write_text("hello residency\n")
    (root / "docs" / "notes with spaces.md").write_text("# notes\n" * 100)
    (root / "empty.bin").write_bytes(b"")
    for i in range(5):
        write_random(root / "data" / f"part-{i:02d}.bin", 1000 + i * 4096)
    write_random(root / "data" / "big.bin", BIG_SIZE)
    return tree_digest(root)


def remote_files(rclone: Rclone, remote: str) -> set[str]:
    return set(ok(rclone("lsf", "-R", "--files-only", remote)).splitlines())


def test_copy_tree_with_multipart_roundtrips_byte_exact(
    rclone: Rclone, gateway: Any, bucket: str, tmp_path: Path
) -> None:
    src, back = tmp_path / "src", tmp_path / "back"
    expected = make_tree(src)

    ok(rclone("copy", *MULTIPART_FLAGS, str(src), f"res:{bucket}/tree"))

    assert remote_files(rclone, f"res:{bucket}/tree") == set(expected)
    # rclone really took the multipart path: a multipart ETag carries the part count.
    big = gateway.s3().head_object(Bucket=bucket, Key="tree/data/big.bin")
    assert big["ContentLength"] == BIG_SIZE
    assert big["ETag"].strip('"').endswith("-3"), big["ETag"]

    ok(rclone("copy", f"res:{bucket}/tree", str(back)))
    assert tree_digest(back) == expected
    # `check --download` compares every byte, not only sizes and hashes.
    ok(rclone("check", "--download", str(src), f"res:{bucket}/tree"))


def test_sync_removes_remote_file_deleted_locally(
    rclone: Rclone, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    expected = make_tree(src)
    remote = f"res:{bucket}/synced"

    ok(rclone("sync", *MULTIPART_FLAGS, str(src), remote))
    assert remote_files(rclone, remote) == set(expected)

    (src / "docs" / "readme.txt").unlink()
    (src / "data" / "big.bin").unlink()
    write_random(src / "data" / "new.bin", 3000)
    ok(rclone("sync", *MULTIPART_FLAGS, str(src), remote))

    assert remote_files(rclone, remote) == set(tree_digest(src))
    assert "docs/readme.txt" not in remote_files(rclone, remote)
    assert "data/big.bin" not in remote_files(rclone, remote)


def test_check_passes_then_detects_a_same_size_change(
    rclone: Rclone, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    make_tree(src)
    remote = f"res:{bucket}/checked"
    ok(rclone("copy", *MULTIPART_FLAGS, str(src), remote))

    ok(rclone("check", str(src), remote))

    # Same size, different bytes: only a correct ETag/MD5 from the gateway can tell them apart.
    changed = src / "data" / "part-01.bin"
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    changed.write_bytes(bytes(data))
    proc = rclone("check", str(src), remote)
    assert proc.returncode != 0, proc.stderr
    assert "data/part-01.bin" in proc.stderr
    assert "1 differences found" in proc.stderr

    # The multipart file is checked through the MD5 rclone stored in its metadata.
    big = src / "data" / "big.bin"
    with big.open("r+b") as f:
        f.seek(BIG_SIZE - 1)
        last = f.read(1)
        f.seek(BIG_SIZE - 1)
        f.write(bytes([last[0] ^ 0xFF]))
    proc = rclone("check", str(src), remote)
    assert proc.returncode != 0
    assert "data/big.bin" in proc.stderr
    assert "2 differences found" in proc.stderr


def test_lsf_cat_and_delete(rclone: Rclone, gateway: Any, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    ok(rclone("copy", str(src / "docs"), f"res:{bucket}/d"))
    ok(rclone("copy", str(src / "data"), f"res:{bucket}/d/data", "--exclude", "big.bin"))

    top = ok(rclone("lsf", f"res:{bucket}/d")).splitlines()
    assert sorted(top) == ["data/", "notes with spaces.md", "readme.txt"]
    sized = ok(rclone("lsf", "--format", "ps", f"res:{bucket}/d/data")).splitlines()
    assert "part-00.bin;1000" in sized

    assert ok(rclone("cat", f"res:{bucket}/d/readme.txt")) == "hello residency\n"
    assert ok(rclone("cat", f"res:{bucket}/d/notes with spaces.md")) == "# notes\n" * 100

    ok(rclone("deletefile", f"res:{bucket}/d/readme.txt"))
    ok(rclone("delete", f"res:{bucket}/d/data"))
    assert remote_files(rclone, f"res:{bucket}/d") == {"notes with spaces.md"}
    with pytest.raises(ClientError) as err:
        gateway.s3().head_object(Bucket=bucket, Key="d/readme.txt")
    assert err.value.response["Error"]["Code"] in ("404", "NoSuchKey")


def test_missing_bucket_is_reported(rclone: Rclone) -> None:
    """NoSuchBucket must reach rclone as "directory not found" (exit 3), not as an empty listing."""
    missing = f"res:rc-missing-{uuid.uuid4().hex[:8]}"
    for args in (("cat", f"{missing}/key"), ("lsf", missing)):
        proc = rclone(*args)
        assert proc.returncode == 3, (args, proc.returncode, proc.stderr)
        assert "directory not found" in proc.stderr


def test_copy_to_missing_bucket_is_created_then_listed(rclone: Rclone, tmp_path: Path) -> None:
    """rclone creates the bucket itself on first copy (CreateBucket through the gateway)."""
    name = f"rc-new-{uuid.uuid4().hex[:8]}"
    (tmp_path / "a.txt").write_text("a")
    ok(rclone("copy", str(tmp_path / "a.txt"), f"res:{name}"))
    assert ok(rclone("lsf", f"res:{name}")).splitlines() == ["a.txt"]
    assert name + "/" in ok(rclone("lsf", "res:")).splitlines()


def stored_blobs(gateway: Any, moto_server: Any) -> set[str]:
    """Every blob in every location: files of the fs locations, objects of the moto one."""
    files = {str(p) for paths in gateway.blob_files().values() for p in paths}
    moto = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint,
        aws_access_key_id=moto_server.access_key,
        aws_secret_access_key=moto_server.secret_key,
        region_name=moto_server.region,
    )
    pages = moto.get_paginator("list_objects_v2").paginate(Bucket=gateway.moto_bucket)
    objects = {f"moto:{o['Key']}" for page in pages for o in page.get("Contents", [])}
    return files | objects


def test_forbidden_upload_is_refused_and_nothing_is_stored(
    rclone: Rclone, gateway: Any, moto_server: Any, bucket: str, tmp_path: Path
) -> None:
    secret = tmp_path / "ru-customers.csv"
    secret.write_text("id,name\n1,Ivan\n")
    before = stored_blobs(gateway, moto_server)

    proc = rclone("copyto", *FORBIDDEN_HEADERS, str(secret), f"res:{bucket}/ru/customers.csv")

    assert proc.returncode != 0, proc.stderr
    assert "ResidencyViolation" in proc.stderr
    assert "403" in proc.stderr
    assert remote_files(rclone, f"res:{bucket}") == set()
    with pytest.raises(ClientError):
        gateway.s3().head_object(Bucket=bucket, Key="ru/customers.csv")
    assert stored_blobs(gateway, moto_server) == before


def test_forbidden_multipart_upload_is_refused(
    rclone: Rclone, gateway: Any, moto_server: Any, bucket: str, tmp_path: Path
) -> None:
    """The refusal also holds when the classification arrives on CreateMultipartUpload."""
    big = tmp_path / "ru-big.bin"
    write_random(big, BIG_SIZE)
    before = stored_blobs(gateway, moto_server)

    proc = rclone("copyto", *MULTIPART_FLAGS, *FORBIDDEN_HEADERS, str(big), f"res:{bucket}/ru.bin")

    assert proc.returncode != 0, proc.stderr
    assert "ResidencyViolation" in proc.stderr
    assert remote_files(rclone, f"res:{bucket}") == set()
    assert gateway.s3().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert stored_blobs(gateway, moto_server) == before


def test_same_file_allowed_without_forbidden_class(
    rclone: Rclone, gateway: Any, moto_server: Any, bucket: str, tmp_path: Path
) -> None:
    """Control for the refusal tests: the class causes the refusal, not the file, and an
    accepted write does add a blob under a location (so "nothing stored" above is not vacuous).
    """
    f = tmp_path / "ru-customers.csv"
    f.write_text("id,name\n1,Ivan\n")
    before = stored_blobs(gateway, moto_server)
    ok(
        rclone(
            "copyto",
            "--header-upload",
            "x-amz-meta-residency-class: public",
            str(f),
            f"res:{bucket}/ru/customers.csv",
        )
    )
    assert ok(rclone("cat", f"res:{bucket}/ru/customers.csv")) == "id,name\n1,Ivan\n"
    assert stored_blobs(gateway, moto_server) - before


def test_server_side_copy_including_multipart_copy(
    rclone: Rclone, gateway: Any, bucket: str, tmp_path: Path
) -> None:
    """Remote-to-remote copy: CopyObject, and UploadPartCopy above the copy cutoff."""
    src = tmp_path / "src"
    expected = make_tree(src)
    ok(rclone("copy", *MULTIPART_FLAGS, str(src), f"res:{bucket}/a"))

    proc = rclone("copy", "-v", "--s3-copy-cutoff", "5M", f"res:{bucket}/a", f"res:{bucket}/b")
    ok(proc)
    assert "Copied (server-side copy)" in proc.stderr

    big = gateway.s3().head_object(Bucket=bucket, Key="b/data/big.bin")
    assert big["ContentLength"] == BIG_SIZE
    assert big["ETag"].strip('"').endswith("-3"), big["ETag"]  # copied as three parts
    ok(rclone("check", "--download", f"res:{bucket}/a", f"res:{bucket}/b"))
    ok(rclone("copy", f"res:{bucket}/b", str(tmp_path / "back")))
    assert tree_digest(tmp_path / "back") == expected


def version_name(name: str, modified: dt.datetime) -> str:
    """rclone's name for a noncurrent version: the stem, `-v` and its UTC time to the ms."""
    stem, dot, ext = name.rpartition(".")
    t = modified.astimezone(dt.UTC)
    return f"{stem}-v{t:%Y-%m-%d-%H%M%S}-{t.microsecond // 1000:03d}{dot}{ext}"


def rfc3339_ms(t: dt.datetime) -> str:
    t = t.astimezone(dt.UTC)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"


def test_versions_listed_read_at_a_time_and_cleaned_up(
    rclone: Rclone, gateway: Any, bucket: str, tmp_path: Path
) -> None:
    """`backend versioning` turns versioning on; `--s3-versions` shows old versions under
    rclone's `name-vTIME.ext` names and reads their bytes; `--s3-version-at` shows the bucket
    as it was; a delete leaves a marker; `backend cleanup-hidden` removes what is hidden."""
    s3 = gateway.s3()
    assert ok(rclone("backend", "versioning", f"res:{bucket}")).strip() == "Unversioned"
    assert ok(rclone("backend", "versioning", f"res:{bucket}", "Enabled")).strip() == "Enabled"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

    bodies = [f"notes, take {i}\n" * (3 + i) for i in range(3)]
    src = tmp_path / "notes.txt"
    for text in bodies:
        src.write_text(text)
        ok(rclone("copyto", str(src), f"res:{bucket}/d/notes.txt"))
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [v["Size"] for v in versions] == [len(b) for b in reversed(bodies)]
    assert [v["IsLatest"] for v in versions] == [True, False, False]
    old = [version_name("notes.txt", v["LastModified"]) for v in versions[1:]]  # newest first

    assert ok(rclone("lsf", f"res:{bucket}/d")).splitlines() == ["notes.txt"]
    listed = ok(rclone("lsf", "--s3-versions", "--format", "ps", f"res:{bucket}/d"))
    assert sorted(listed.splitlines()) == sorted(
        [f"notes.txt;{len(bodies[2])}", f"{old[0]};{len(bodies[1])}", f"{old[1]};{len(bodies[0])}"]
    )

    # Each old version's bytes, read by its version name. (rclone 1.60 resolves such a name
    # only through a listing, so the directory is named and the version picked by a filter.)
    def cat_version(name: str) -> str:
        return ok(rclone("cat", "--s3-versions", "--include", f"/{name}", f"res:{bucket}/d"))

    assert [cat_version(name) for name in old] == [bodies[1], bodies[0]]
    back = tmp_path / "back"
    ok(rclone("copy", "--s3-versions", f"res:{bucket}/d", str(back)))
    assert {p.name: p.read_text() for p in back.iterdir()} == {
        "notes.txt": bodies[2],
        old[0]: bodies[1],
        old[1]: bodies[0],
    }

    # --s3-version-at: the directory as it was just before the last write.
    before_last = rfc3339_ms(versions[0]["LastModified"] - dt.timedelta(milliseconds=1))
    at = ("--s3-version-at", before_last)
    assert ok(rclone("lsf", *at, "--format", "ps", f"res:{bucket}/d")).splitlines() == [
        f"notes.txt;{len(bodies[1])}"
    ]
    assert ok(rclone("cat", *at, f"res:{bucket}/d")) == bodies[1]

    # A delete in a versioned bucket adds a marker: the file is gone, every version is kept.
    ok(rclone("deletefile", f"res:{bucket}/d/notes.txt"))
    listing = s3.list_object_versions(Bucket=bucket)
    (marker,) = listing["DeleteMarkers"]
    assert marker["IsLatest"] is True
    assert [v["VersionId"] for v in listing["Versions"]] == [v["VersionId"] for v in versions]
    assert ok(rclone("lsf", f"res:{bucket}/d")) == ""
    newest = version_name("notes.txt", versions[0]["LastModified"])
    assert sorted(ok(rclone("lsf", "--s3-versions", f"res:{bucket}/d")).splitlines()) == sorted(
        [newest, *old]
    )
    assert cat_version(newest) == bodies[2]
    # Just before the delete the file was there, with its last bytes.
    at = ("--s3-version-at", rfc3339_ms(marker["LastModified"] - dt.timedelta(milliseconds=1)))
    assert ok(rclone("cat", *at, f"res:{bucket}/d")) == bodies[2]

    # cleanup-hidden deletes every noncurrent version and the marker, each by its id.
    ok(rclone("backend", "cleanup-hidden", f"res:{bucket}"))
    after = s3.list_object_versions(Bucket=bucket)
    assert after.get("Versions", []) == []
    assert after.get("DeleteMarkers", []) == []
    assert ok(rclone("lsf", "--s3-versions", f"res:{bucket}")) == ""
