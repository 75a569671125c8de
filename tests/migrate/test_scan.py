"""`residency scan` (issue 12, item 5) lists what is really at each location and compares it
with the metadata, through the real CLI, on fs locations and on a moto-backed s3 location."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
from migrate_support import (
    AWS,
    ORACLE,
    SRC,
    World,
    adopt_and_plan,
    make_world,
    payload,
    run_cli,
)

from residency.catalog import load_catalog
from residency.config import load_settings
from residency.migrate.scan import sorted_listing
from residency.storage import open_locations

N = 5


def cli(world: World, *args: str) -> tuple[int, str, str]:
    r = run_cli(*args, *world.args(), cwd=world.root)
    return r.code, r.stdout, r.stderr


def blob_keys(world: World, location: str) -> list[str]:
    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        rows = con.execute(
            "select s.blob_key from segments s join placements p "
            "on p.object_version_id = s.object_version_id where p.location = ? "
            "order by s.blob_key",
            (location,),
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def migrated(world: World) -> None:
    for i in range(N):
        world.put_native(f"us/u{i}.bin", payload(i, 500 + i))
    world.put_native("videos/v.public", b"v" * 300)
    plan = adopt_and_plan(world)
    code, out, err = cli(world, "migrate", str(plan))
    assert code == 0, out + err


def scan(world: World, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = cli(world, "scan", *args, "--json")
    assert code in (0, 1), out + err
    return code, json.loads(out)


def test_a_clean_system_scans_clean_and_each_kind_of_drift_is_found(world: World) -> None:
    migrated(world)
    code, result = scan(world)
    assert code == 0, result
    assert result["drift"] == 0
    by_name = {loc["location"]: loc for loc in result["locations"]}
    assert by_name[ORACLE]["listed"] == by_name[ORACLE]["placed"] == N
    assert by_name[SRC]["listed"] == by_name[SRC]["placed"] == 1  # the public video stays
    code, out, _ = cli(world, "scan")
    assert code == 0
    assert "no drift" in out
    html = world.root / "r.html"
    code, out, err = cli(world, "report", "--scan", "--json", "-o", str(html))
    assert code == 0, out + err
    assert json.loads(out)["scan"]["drift"] == 0

    # Now break things the way the real world does.
    (world.dir(AWS) / "stray/left-by-hand.bin").parent.mkdir(parents=True)
    (world.dir(AWS) / "stray/left-by-hand.bin").write_bytes(b"x" * 77)  # nobody's bytes
    oracle_keys = blob_keys(world, ORACLE)
    (world.dir(ORACLE) / oracle_keys[0]).unlink()  # a placement lost its blob
    (world.dir(AWS) / blob_keys(world, AWS)[1]).write_bytes(b"short")  # ...or its size
    world.put_native("us/late.bin", b"a US record adopted late")
    code, _, err = cli(world, "adopt", SRC, "--bucket", "tiktok", "--rules", "rules.yaml")
    assert code == 0, err  # now placed at Alibaba, which the policy forbids for it
    left = world.dir(SRC) / "us/u0.bin"
    left.write_bytes(payload(0, 500))  # bytes a killed migration had still to erase
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    con = sqlite3.connect(world.root / "data" / "residency.db")
    con.execute(
        "insert into garbage_blobs (location, blob_key, reason, created) "
        "values (?, 'us/u0.bin', 'migrated', ?)",
        (SRC, now),
    )
    con.commit()
    con.close()

    code, result = scan(world)
    assert code == 1
    by_name = {loc["location"]: loc for loc in result["locations"]}
    counts = {name: {k: n for k, n in loc["counts"].items() if n} for name, loc in by_name.items()}
    assert counts == {
        AWS: {"unreferenced": 1, "size_differs": 1},
        ORACLE: {"missing": 1},
        SRC: {"forbidden": 1, "must_leave": 1},
    }
    assert by_name[AWS]["bytes"]["unreferenced"] == 77
    samples = {(d["kind"], d["blob_key"]) for loc in by_name.values() for d in loc["sample"]}
    assert ("unreferenced", "stray/left-by-hand.bin") in samples
    assert ("missing", oracle_keys[0]) in samples
    assert ("forbidden", "us/late.bin") in samples
    assert ("must_leave", "us/u0.bin") in samples
    forbidden = next(d for d in by_name[SRC]["sample"] if d["kind"] == "forbidden")
    assert forbidden["target"] == "tiktok/us/late.bin"

    # The report has a section for it, and says the system is not compliant.
    code, out, _ = cli(world, "report", "--scan", "--json", "-o", str(html))
    assert code == 1
    assert json.loads(out)["scan"]["drift"] == 5
    page = html.read_text()
    assert 'id="drift"' in page
    assert "stray/left-by-hand.bin" in page

    # One location at a time; people get a table and one line per item.
    code, result = scan(world, ORACLE)
    assert code == 1
    assert [loc["location"] for loc in result["locations"]] == [ORACLE]
    code, out, _ = cli(world, "scan", AWS)
    assert code == 1
    assert "drift: unreferenced at aws-us-east-1: stray/left-by-hand.bin" in out
    assert "2 drift items" in out


def test_bad_input_is_one_line(world: World) -> None:
    migrated(world)
    code, out, err = cli(world, "scan", "nowhere-1")
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "no location named 'nowhere-1'" in err
    code, _, err = cli(world, "scan", "--policy", "preset:no-such-law")
    assert code == 2
    assert "policy" in err
    assert "Traceback" not in err


def test_scan_an_s3_location_with_an_open_multipart_upload(
    tmp_path: Path, moto_server: Any
) -> None:
    bucket = moto_server.new_bucket()
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"us/{i}.bin", Body=payload(i, 2000))
    source = {
        "name": SRC,
        "provider": "alibaba",
        "region": "ap-southeast-1",
        "scheme": "s3",
        "options": moto_server.location_options(bucket),
    }
    world = make_world(tmp_path, extra=[source])
    plan = adopt_and_plan(world)
    code, out, err = cli(world, "migrate", str(plan))
    assert code == 0, out + err
    code, result = scan(world, SRC)
    assert code == 0, result
    assert result["locations"][0]["listed"] == 0  # every US person's bytes are gone

    # Someone uploads behind residency's back and never finishes; another object is left.
    up = s3.create_multipart_upload(Bucket=bucket, Key="us/huge.bin")
    s3.upload_part(
        Bucket=bucket, Key="us/huge.bin", UploadId=up["UploadId"], PartNumber=1, Body=b"p" * 5000
    )
    s3.put_object(Bucket=bucket, Key="us/dropped-here.bin", Body=b"d" * 123)
    code, result = scan(world, SRC)
    assert code == 1
    loc = result["locations"][0]
    assert {k: n for k, n in loc["counts"].items() if n} == {
        "unreferenced": 1,
        "incomplete_upload": 1,
    }
    upload = next(d for d in loc["sample"] if d["kind"] == "incomplete_upload")
    assert upload["blob_key"] == "us/huge.bin"
    assert up["UploadId"] in upload["target"]


async def test_a_listing_is_sorted_in_bounded_runs(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    keys = [f"{random.Random(i).choice('abz')}/{i:03d}-{'x' * (i % 4)}" for i in range(40)]
    keys += ["a-b", "a/b", "a.b", "é/1", "zz"]  # '-' and '.' sort before '/': byte order
    for key in keys:
        path = world.dir(AWS) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"1" * (len(key) % 7))
    location = open_locations(load_settings(world.config), load_catalog())[AWS]
    spill = tmp_path / "runs"
    spill.mkdir()
    got = [entry async for entry in sorted_listing(location, spill, run_size=6)]
    assert got == sorted((k, len(k) % 7) for k in keys)
    assert len(list(spill.iterdir())) == -(-len(keys) // 6)  # it really spilled runs
