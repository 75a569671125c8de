"""verify catches corrupt and missing blobs; adopt from a moto S3 bucket with a lookup file."""

from __future__ import annotations

import json
from typing import Any

import boto3  # type: ignore[import-untyped]
from migrate_support import (
    AWS,
    ORACLE,
    SRC,
    World,
    adopt_and_plan,
    json_lines,
    make_world,
    payload,
    placed,
    run_cli,
)


def blob_key(world: World, key: str) -> str:
    import sqlite3

    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        row = con.execute(
            "select s.blob_key from segments s join object_versions v "
            "on v.id = s.object_version_id where v.key = ? and v.is_latest",
            (key,),
        ).fetchone()
    finally:
        con.close()
    return str(row[0])


def test_verify_catches_corrupt_and_missing_blobs(world: World) -> None:
    for i in range(4):
        world.put_native(f"us/{i}.bin", payload(i, 4000))
    args = world.args()
    plan = adopt_and_plan(world)
    assert run_cli("migrate", str(plan), *args, cwd=world.root).code == 0
    assert run_cli("verify", "--deep", *args, cwd=world.root).code == 0

    # Same size, different bytes: only a deep verify can see it.
    corrupt = world.dir(ORACLE) / blob_key(world, "us/1.bin")
    corrupt.write_bytes(b"X" * 4000)
    (world.dir(AWS) / blob_key(world, "us/2.bin")).unlink()

    r = run_cli("verify", "--json", *args, cwd=world.root)
    assert r.code == 1
    shallow = json.loads(r.stdout)["mismatches"]
    assert [(m["key"], m["location"], m["problem"]) for m in shallow] == [
        ("us/2.bin", AWS, "blob is missing")
    ]
    r = run_cli("verify", "--deep", *args, cwd=world.root)
    assert r.code == 1
    assert f"tiktok/us/1.bin at {ORACLE}" in r.stdout
    assert "MD5" in r.stdout
    assert f"tiktok/us/2.bin at {AWS}" in r.stdout
    assert "missing" in r.stdout
    assert "2 mismatches" in r.stdout


def test_adopt_from_s3_with_lookup_then_migrate(tmp_path, moto_server: Any) -> None:  # type: ignore[no-untyped-def]
    bucket = moto_server.new_bucket()
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    for i in range(6):
        s3.put_object(Bucket=bucket, Key=f"media/{i}.jpg", Body=payload(i, 10_000 + i))
    source = {
        "name": SRC,
        "provider": "alibaba",
        "region": "ap-southeast-1",
        "scheme": "s3",
        "options": moto_server.location_options(bucket),
    }
    world = make_world(tmp_path, extra=[source])
    lookup = tmp_path / "map.csv"
    lookup.write_text(
        "key,class,subject,count\n"
        + "".join(f"media/{i}.jpg,personal,US,1\n" for i in range(3))
        + "media/3.jpg,public,,\n"
    )
    r = run_cli(
        "adopt",
        SRC,
        "--bucket",
        "media",
        "--tenant",
        "bt",
        "--lookup",
        str(lookup),
        "--json",
        *world.args(),
        cwd=tmp_path,
    )
    assert r.code == 0, r.stderr
    # Keys missing from the lookup fall back to the policy's default class.
    assert json.loads(r.stdout)["by_class"] == {"personal": 3, "public": 1, "unclassified": 2}
    # Adopting again changes nothing.
    r = run_cli("adopt", SRC, "--bucket", "media", "--json", *world.args(), cwd=tmp_path)
    assert json.loads(r.stdout)["already_managed"] == 6

    plan = tmp_path / "p.jsonl"
    r = run_cli("plan", "-o", str(plan), "--json", *world.args(), cwd=tmp_path)
    summary = json.loads(r.stdout)
    # The unclassified objects carry no subject: every law that protects someone applies to
    # them at once, and no configured location satisfies them all.
    assert r.code == 1, r.stderr
    assert sorted(x["key"] for x in summary["unplaceable_sample"]) == ["media/4.jpg", "media/5.jpg"]
    assert summary["moves"] >= 3
    r = run_cli("migrate", str(plan), "--json", *world.args(), cwd=tmp_path)
    assert r.code == 0, r.stdout + r.stderr
    assert json_lines(r.stdout)[-1]["failed"] == 0
    for i in range(3):
        assert placed(world, "media", f"media/{i}.jpg")[ORACLE] == payload(i, 10_000 + i)
    r = run_cli("verify", "--deep", "--json", *world.args(), cwd=tmp_path)
    assert r.code == 0, r.stdout


def test_bad_input_gets_one_line(world: World) -> None:
    args = world.args()
    r = run_cli("migrate", str(world.root / "nope.jsonl"), *args, cwd=world.root)
    assert r.code == 2
    assert "file not found" in r.stderr
    assert "Traceback" not in r.stderr
    trunc = world.root / "t.jsonl"
    trunc.write_text('{"format":"residency-plan/1","id":"x","created":"","policy":"p"}\n')
    r = run_cli("migrate", str(trunc), *args, cwd=world.root)
    assert r.code == 2
    assert "incomplete" in r.stderr
    r = run_cli("migrate", str(trunc), "--bwlimit", "fast", *args, cwd=world.root)
    assert r.code == 2
    assert "--bwlimit" in r.stderr
    bad_rules = world.root / "bad.yaml"
    bad_rules.write_text("- {prefix: a, regex: b, class: personal}\n")
    r = run_cli("adopt", SRC, "--bucket", "bkt", "--rules", str(bad_rules), *args, cwd=world.root)
    assert r.code == 2
    assert "rule 1" in r.stderr
    r = run_cli("adopt", SRC, "--bucket", "nosuch", *args, cwd=world.root)
    assert r.code == 2
    assert "does not exist" in r.stderr
    r = run_cli("plan", "--bucket", "nosuch", *args, cwd=world.root)
    assert r.code == 2
    assert "does not exist" in r.stderr
