"""The report counts every byte (issue 12, item 4): bytes still at a location the policy
forbids — released but not erased, parts of open uploads — are out of compliance in `report`,
`plan` and the exit code of `verify`, until they are gone. Through the real CLI."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

from migrate_support import AWS, SRC, World, adopt_and_plan, json_lines, payload, run_cli

N = 4


def cli(world: World, *args: str) -> tuple[int, str, str]:
    r = run_cli(*args, *world.args(), cwd=world.root)
    return r.code, r.stdout, r.stderr


def db(world: World) -> sqlite3.Connection:
    return sqlite3.connect(world.root / "data" / "residency.db")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def migrated(world: World) -> None:
    for i in range(N):
        world.put_native(f"us/u{i}.bin", payload(i, 600 + i))
    plan = adopt_and_plan(world)
    code, out, err = cli(world, "migrate", str(plan), "--json")
    assert code == 0, out + err
    code, out, err = cli(world, "report", "--json", "-o", str(world.root / "r.html"))
    assert code == 0, out + err
    assert json.loads(out)["compliant"] is True


def test_bytes_released_but_not_erased_are_out_of_compliance_until_erased(
    world: World,
) -> None:
    migrated(world)
    # A run killed between its commit and its erasure: the blob is still at Alibaba.
    left = world.dir(SRC) / "us/u1.bin"
    left.write_bytes(payload(1, 601))
    con = db(world)
    con.execute(
        "insert into garbage_blobs (location, blob_key, reason, created, claimed) "
        "values (?, 'us/u1.bin', 'migrated', ?, ?)",
        (SRC, now(), now()),
    )
    con.commit()
    con.close()

    code, out, _ = cli(world, "report", "--json", "-o", str(world.root / "r.html"))
    assert code == 1
    report = json.loads(out)
    assert report["violations_total"] == 0  # every object is placed where it may be...
    assert report["compliant"] is False  # ...but not every byte is
    assert report["leftover_blobs"] == 1
    assert report["leftovers"][0]["location"] == SRC
    assert report["leftovers"][0]["kind"] == "must_leave"
    html = (world.root / "r.html").read_text()
    assert 'id="leftovers"' in html
    code, out, _ = cli(world, "report", "-o", str(world.root / "r.html"))
    assert code == 1
    assert "1 blobs left where it forbids them" in out
    assert "left behind: 1 blobs" in out

    code, out, _ = cli(world, "verify", "--json")
    assert code == 1
    found = json.loads(out)
    assert found["mismatches"] == []
    assert [x["location"] for x in found["leftovers"]] == [SRC]

    code, out, _ = cli(world, "plan", "--json")
    assert code == 1
    planned = json.loads(out)
    assert planned["moves"] == 0
    assert planned["leftovers"][0]["blobs"] == 1

    # The sweep erases it at once (no grace for bytes that must leave); all clear again.
    code, out, err = cli(world, "sweep", "--json")
    assert code == 0, err
    assert json.loads(out)["erased"] == 1
    assert not left.exists()
    for command in (["verify"], ["plan"], ["report", "-o", str(world.root / "r.html")]):
        code, out, err = cli(world, *command, "--json")
        assert code == 0, (command, out, err)


def test_parts_of_an_open_upload_the_policy_now_forbids_are_counted(world: World) -> None:
    migrated(world)
    # An upload of US health data begun at Alibaba (under an older, wider policy) and never
    # completed: its two parts are still there.
    con = db(world)
    bucket_id, tenant_id = con.execute("select id, tenant_id from buckets").fetchone()
    con.execute(
        "insert into multipart_uploads (upload_id, bucket_id, key, initiated, tenant_id, "
        "user_metadata, tags, data_class, subject, locations) "
        "values ('up-1', ?, 'us/scan.dcm', ?, ?, '{}', '{}', 'personal.health', 'US', ?)",
        (bucket_id, now(), tenant_id, json.dumps([SRC, AWS])),
    )
    upload = con.execute("select id from multipart_uploads").fetchone()[0]
    for n in (1, 2):
        con.execute(
            "insert into multipart_parts (multipart_upload_id, part_number, blob_key, size, "
            "etag, created) values (?, ?, ?, 1000, 'e', ?)",
            (upload, n, f"blobs/part-{n}", now()),
        )
    con.commit()
    con.close()
    code, out, _ = cli(world, "report", "--json", "-o", str(world.root / "r.html"))
    assert code == 1
    leftovers = json.loads(out)["leftovers"]
    assert leftovers == [
        {
            "location": SRC,
            "kind": "multipart_parts",
            "blobs": 2,
            "bytes": 2000,
            "unknown_size": 0,
            "reason": leftovers[0]["reason"],
        }
    ]
    assert "abort the uploads" in leftovers[0]["reason"]
    code, out, _ = cli(world, "verify", "--json")
    assert code == 1
    assert json.loads(out)["leftovers"][0]["kind"] == "multipart_parts"


def test_parts_are_judged_under_the_bucket_policy_too(world: World) -> None:
    """An open upload of public data at AWS: the operator's policy allows it there, the
    bucket's own policy (which narrows it, as everywhere) does not."""
    migrated(world)
    no_aws = world.root / "no-aws.yaml"
    no_aws.write_text(
        "name: no-aws\nrules:\n  - id: no-aws\n    scope: {data_class: public}\n"
        "    constraints: {deny_providers: [aws]}\n"
    )
    con = db(world)
    con.execute("update buckets set policy = ?", (str(no_aws),))
    bucket_id, tenant_id = con.execute("select id, tenant_id from buckets").fetchone()
    con.execute(
        "insert into multipart_uploads (upload_id, bucket_id, key, initiated, tenant_id, "
        "user_metadata, tags, data_class, subject, locations) "
        "values ('up-2', ?, 'videos/big.public', ?, ?, '{}', '{}', 'public', NULL, ?)",
        (bucket_id, now(), tenant_id, json.dumps([AWS])),
    )
    upload = con.execute("select id from multipart_uploads").fetchone()[0]
    con.execute(
        "insert into multipart_parts (multipart_upload_id, part_number, blob_key, size, "
        "etag, created) values (?, 1, 'blobs/part-1', 700, 'e', ?)",
        (upload, now()),
    )
    con.commit()
    con.close()
    code, out, _ = cli(world, "verify", "--json")
    assert code == 1
    (left,) = json.loads(out)["leftovers"]
    assert (left["location"], left["kind"], left["bytes"]) == (AWS, "multipart_parts", 700)


def test_migrate_reports_erasures(world: World) -> None:
    for i in range(N):
        world.put_native(f"us/u{i}.bin", payload(i, 600 + i))
    plan = adopt_and_plan(world)
    code, out, err = cli(world, "migrate", str(plan))
    assert code == 0, out + err
    assert f"{N} blobs" in out
    assert "erased from locations they had to leave" in out
    code, out, _ = cli(world, "migrate", str(plan), "--json")
    assert json_lines(out)[-1]["erased"] == 0
