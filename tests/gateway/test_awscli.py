"""The AWS CLI (`aws s3` and `aws s3api`) against the gateway, unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from gwserver import Gateway


def aws(
    gateway: Gateway, *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["aws", "--endpoint-url", gateway.endpoint, *args],
        env={**os.environ, **gateway.env()},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_s3_cp_sync_ls_rm(gateway: Gateway, tmp_path: Path) -> None:
    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    aws(gateway, "s3", "mb", f"s3://{bucket}")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.bin").write_bytes(os.urandom(20_000))
    (src / "big.bin").write_bytes(os.urandom(9 * 1024 * 1024))  # multipart (8 MiB threshold)
    aws(gateway, "s3", "cp", str(src / "a.txt"), f"s3://{bucket}/single/a.txt")
    aws(gateway, "s3", "sync", str(src), f"s3://{bucket}/tree")
    listing = aws(gateway, "s3", "ls", "--recursive", f"s3://{bucket}").stdout
    for key in ("single/a.txt", "tree/a.txt", "tree/sub/b.bin", "tree/big.bin"):
        assert key in listing
    dst = tmp_path / "dst"
    aws(gateway, "s3", "sync", f"s3://{bucket}/tree", str(dst))
    for rel in ("a.txt", "sub/b.bin", "big.bin"):
        assert (dst / rel).read_bytes() == (src / rel).read_bytes()
    # A second sync has nothing to do.
    assert aws(gateway, "s3", "sync", str(src), f"s3://{bucket}/tree").stdout.strip() == ""
    aws(gateway, "s3", "rm", "--recursive", f"s3://{bucket}/tree")
    listing = aws(gateway, "s3", "ls", "--recursive", f"s3://{bucket}").stdout
    assert "tree/" not in listing
    assert "single/a.txt" in listing
    buckets = aws(gateway, "s3", "ls").stdout
    assert bucket in buckets


def test_s3api_put_and_head_object(gateway: Gateway, tmp_path: Path) -> None:
    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    aws(gateway, "s3api", "create-bucket", "--bucket", bucket)
    body = tmp_path / "record.json"
    body.write_text('{"patient": 1}')
    put = json.loads(
        aws(
            gateway,
            "s3api",
            "put-object",
            "--bucket",
            bucket,
            "--key",
            "records/1.json",
            "--body",
            str(body),
            "--content-type",
            "application/json",
            "--metadata",
            "residency-class=personal.health,residency-subject=US",
        ).stdout
    )
    assert put["ETag"]
    head = json.loads(
        aws(gateway, "s3api", "head-object", "--bucket", bucket, "--key", "records/1.json").stdout
    )
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"residency-class": "personal.health", "residency-subject": "US"}
    assert head["ContentLength"] == len('{"patient": 1}')


def test_refusal_message_reaches_the_cli_user(gateway: Gateway, tmp_path: Path) -> None:
    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    aws(gateway, "s3api", "create-bucket", "--bucket", bucket)
    body = tmp_path / "cn.csv"
    body.write_text("id\n1\n")
    proc = aws(
        gateway,
        "s3api",
        "put-object",
        "--bucket",
        bucket,
        "--key",
        "cn.csv",
        "--body",
        str(body),
        "--metadata",
        "residency-class=personal,residency-subject=CN",
        check=False,
    )
    assert proc.returncode != 0
    assert "ResidencyViolation" in proc.stderr
    assert "pipl-mainland-only" in proc.stderr


def test_s3api_versioning_versions_markers_and_restore(gateway: Gateway, tmp_path: Path) -> None:
    """Versioning through `aws s3api`: every PUT a version readable by the id it returned,
    ListObjectVersions (also paged one entry at a time), a delete marker, and deleting the
    marker (then the newest version) to bring an older version back."""
    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    key = "records/report.csv"

    def s3api(*args: str) -> dict[str, Any]:
        """`aws s3api <op> --bucket <bucket> ...` and its JSON answer ({} when it prints none)."""
        out = aws(gateway, "s3api", *args, "--bucket", bucket).stdout
        return dict(json.loads(out)) if out.strip() else {}

    def set_versioning(status: str) -> None:
        s3api("put-bucket-versioning", "--versioning-configuration", f"Status={status}")
        assert s3api("get-bucket-versioning") == {"Status": status}

    s3api("create-bucket")
    assert s3api("get-bucket-versioning") == {}  # never configured: no Status at all
    set_versioning("Enabled")

    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_bytes(b"id,v\n1,old\n")
    new.write_bytes(b"id,v\n1,new and longer\n")

    def put(body: Path) -> dict[str, Any]:
        return s3api("put-object", "--key", key, "--body", str(body))

    first, second = put(old), put(new)
    v1, v2 = first["VersionId"], second["VersionId"]
    assert v1 != v2
    assert "null" not in (v1, v2)

    def versions(*extra: str) -> tuple[list[tuple[str, str, bool, str]], list[tuple[str, bool]]]:
        """(key, id, IsLatest, ETag) of each version and (id, IsLatest) of each marker."""
        listing = s3api("list-object-versions", *extra)
        return (
            [(v["Key"], v["VersionId"], v["IsLatest"], v["ETag"]) for v in listing["Versions"]],
            [(m["VersionId"], m["IsLatest"]) for m in listing.get("DeleteMarkers") or []],
        )

    e1, e2 = first["ETag"], second["ETag"]
    assert versions("--prefix", "records/") == ([(key, v2, True, e2), (key, v1, False, e1)], [])

    # The old version by id: its bytes, and the id it was written with.
    meta = s3api("get-object", "--key", key, "--version-id", v1, str(tmp_path / "got-v1"))
    assert (tmp_path / "got-v1").read_bytes() == old.read_bytes()
    assert meta["VersionId"] == v1
    assert meta["ETag"] == first["ETag"]
    meta = s3api("get-object", "--key", key, str(tmp_path / "got-current"))
    assert (tmp_path / "got-current").read_bytes() == new.read_bytes()
    assert meta["VersionId"] == v2
    head = s3api("head-object", "--key", key, "--version-id", v1)
    assert (head["VersionId"], head["ContentLength"]) == (v1, old.stat().st_size)

    # DeleteObject without an id: a delete marker becomes the current version.
    gone = s3api("delete-object", "--key", key)
    assert gone["DeleteMarker"] is True
    marker = gone["VersionId"]
    assert marker not in (v1, v2)
    proc = aws(
        gateway,
        "s3api",
        "get-object",
        "--bucket",
        bucket,
        "--key",
        key,
        str(tmp_path / "none"),
        check=False,
    )
    assert proc.returncode != 0
    assert "NoSuchKey" in proc.stderr
    assert not (tmp_path / "none").exists()
    expected = ([(key, v2, False, e2), (key, v1, False, e1)], [(marker, True)])
    assert versions() == expected
    # The CLI's own paging (NextKeyMarker/NextVersionIdMarker) sees the same entries.
    assert versions("--page-size", "1") == expected

    # Deleting the marker restores the newest version; deleting that one, the older one.
    undone = s3api("delete-object", "--key", key, "--version-id", marker)
    assert (undone["DeleteMarker"], undone["VersionId"]) == (True, marker)
    meta = s3api("get-object", "--key", key, str(tmp_path / "restored"))
    assert (tmp_path / "restored").read_bytes() == new.read_bytes()
    assert meta["VersionId"] == v2
    assert s3api("delete-object", "--key", key, "--version-id", v2)["VersionId"] == v2
    meta = s3api("get-object", "--key", key, str(tmp_path / "older"))
    assert (tmp_path / "older").read_bytes() == old.read_bytes()
    assert meta["VersionId"] == v1

    # A copy of a version names its source version and gets an id of its own.
    copied = s3api(
        "copy-object", "--key", "copy.csv", "--copy-source", f"{bucket}/{key}?versionId={v1}"
    )
    assert copied["CopySourceVersionId"] == v1
    assert copied["VersionId"] not in (v1, v2, marker, "null")
    s3api("get-object", "--key", "copy.csv", str(tmp_path / "copy"))
    assert (tmp_path / "copy").read_bytes() == old.read_bytes()

    # Suspended: new writes replace the `null` version; the versioned ones stay.
    set_versioning("Suspended")
    assert put(new)["VersionId"] == "null"
    assert versions("--prefix", key) == ([(key, "null", True, e2), (key, v1, False, e1)], [])
