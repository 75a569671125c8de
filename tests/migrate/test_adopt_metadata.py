"""adopt classifies by object metadata and (s3) tags, read one object at a time from the source."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from migrate_support import SRC, World, make_world, payload, run_cli

from residency.config import LocationConfig
from residency.migrate.adopt import AdoptError, AdoptRule, Classifier
from residency.policy import load_policy
from residency.storage.errors import StorageConfigError
from residency.storage.s3_tags import S3Tags

REPO = Path(__file__).resolve().parents[2]

S3_RULES = """\
rules:
  - {prefix: "fixed/", class: public}
  - {from_metadata: true}
  - {from_tags: true}
  - {metadata: {X-Amz-Meta-Dept: hr}, class: personal, subject: US}
  - {tags: {classification: [public, open]}, class: public}
  - {prefix: "eu/", tags: {team: growth}, class: personal, subject: FR}
"""


def classes(root: Path, bucket: str) -> dict[str, tuple[str, str | None, int | None]]:
    con = sqlite3.connect(root / "data" / "residency.db")
    try:
        rows = con.execute(
            "select v.key, v.data_class, v.subject, v.subject_count from object_versions v "
            "join buckets b on b.id = v.bucket_id where b.name = ? and v.is_latest",
            (bucket,),
        ).fetchall()
    finally:
        con.close()
    return {k: (c, s, n) for k, c, s, n in rows}


def s3_client(moto: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        aws_access_key_id=moto.access_key,
        aws_secret_access_key=moto.secret_key,
        region_name=moto.region,
    )


def s3_world(tmp_path: Path, moto: Any, bucket: str, root: str = "/") -> World:
    source = {
        "name": SRC,
        "provider": "alibaba",
        "region": "ap-southeast-1",
        "scheme": "s3",
        "options": moto.location_options(bucket, root),
    }
    return make_world(tmp_path, extra=[source])


def adopt(world: World, *extra: str) -> Any:
    return run_cli(
        "adopt", SRC, "--bucket", "media", "--tenant", "bt", *extra, *world.args(), cwd=world.root
    )


def test_s3_metadata_and_tags_classify(tmp_path: Path, moto_server: Any) -> None:
    bucket = moto_server.new_bucket()
    s3 = s3_client(moto_server)

    def put(key: str, i: int, **kw: Any) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=payload(i, 1000 + i), **kw)

    carried = {"Residency-Class": "personal.health", "residency-subject": "de"}
    put("a/0.bin", 0, Metadata={**carried, "residency-subjects": "12"})
    put("a/1.bin", 1, Tagging="residency-class=biometric&residency-subject=US")
    put("b/2.bin", 2, Metadata={"dept": "hr"})
    put("b/3.bin", 3, Tagging="classification=open")
    put("b/4 ü+=&.bin", 4, Tagging="classification=public")  # signing and quoting of odd keys
    put("b/5.bin", 5, Metadata={"dept": "finance"}, Tagging="classification=secret")
    put("eu/6.bin", 6, Tagging="team=growth")
    put("us/7.bin", 7, Tagging="team=growth")  # the tag rule is for eu/ keys only
    put("fixed/8.bin", 8, Metadata={"residency-class": "personal"})  # key rule comes first
    put("both/9.bin", 9, Metadata={"residency-class": "genomic"}, Tagging="residency-class=public")
    put("look/10.bin", 10, Metadata={"residency-class": "personal", "residency-subject": "US"})
    put("c/11.bin", 11)
    world = s3_world(tmp_path, moto_server, bucket)
    (tmp_path / "rules.yaml").write_text(S3_RULES)
    lookup = tmp_path / "map.jsonl"
    lookup.write_text(json.dumps({"key": "look/10.bin", "class": "public"}) + "\n")

    r = adopt(world, "--rules", str(tmp_path / "rules.yaml"), "--lookup", str(lookup), "--json")
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["adopted"] == 12
    assert out["errors"] == []
    assert classes(tmp_path, "media") == {
        "a/0.bin": ("personal.health", "DE", 12),
        "a/1.bin": ("biometric", "US", None),
        "b/2.bin": ("personal", "US", None),
        "b/3.bin": ("public", None, None),
        "b/4 ü+=&.bin": ("public", None, None),
        "b/5.bin": ("unclassified", None, None),
        "eu/6.bin": ("personal", "FR", None),
        "us/7.bin": ("unclassified", None, None),
        "fixed/8.bin": ("public", None, None),
        "both/9.bin": ("genomic", None, None),  # metadata before tags
        # The lookup wins the class; the object's own subject still fills the subject.
        "look/10.bin": ("public", "US", None),
        "c/11.bin": ("unclassified", None, None),
    }

    # Adopting again reads no metadata for managed keys and changes nothing.
    r = adopt(world, "--rules", str(tmp_path / "rules.yaml"), "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["already_managed"] == 12


def test_s3_root_prefix_and_bad_carried_value(tmp_path: Path, moto_server: Any) -> None:
    """Keys under an OpenDAL root; a malformed class on one object is that object's error."""
    bucket = moto_server.new_bucket()
    s3 = s3_client(moto_server)
    s3.put_object(Bucket=bucket, Key="tenant/x/ok.bin", Body=b"1", Tagging="residency-class=public")
    s3.put_object(Bucket=bucket, Key="tenant/x/bad.bin", Body=b"2", Tagging="residency-class=A B")
    s3.put_object(
        Bucket=bucket, Key="tenant/x/n.bin", Body=b"3", Metadata={"residency-subjects": "many"}
    )
    # Well-formed but unknown to the policy: unclassifiable, never "anywhere".
    s3.put_object(
        Bucket=bucket, Key="tenant/x/typo.bin", Body=b"4", Tagging="residency-class=health"
    )
    s3.put_object(
        Bucket=bucket,
        Key="tenant/x/uk.bin",
        Body=b"5",
        Tagging="residency-class=personal&residency-subject=UK",
    )
    world = s3_world(tmp_path, moto_server, bucket, root="/tenant/")
    rules = tmp_path / "r.yaml"
    rules.write_text("- {from_tags: true}\n- {from_metadata: {count: Residency-Subjects}}\n")
    r = adopt(world, "--rules", str(rules), "--json")
    assert r.code == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["adopted"] == 1
    errors = {e["key"]: e["error"] for e in out["errors"]}
    assert set(errors) == {"x/bad.bin", "x/n.bin", "x/typo.bin", "x/uk.bin"}
    assert "did you mean personal.health?" in errors["x/typo.bin"]
    assert "did you mean GB?" in errors["x/uk.bin"]
    assert "tag 'residency-class'" in errors["x/bad.bin"]
    assert "'A B' is not a data class" in errors["x/bad.bin"]
    assert "metadata 'residency-subjects'" in errors["x/n.bin"]
    assert classes(tmp_path, "media") == {"x/ok.bin": ("public", None, None)}


def test_fs_metadata_rules_read_user_xattrs(world: World) -> None:
    """On fs, user metadata is the `user.*` extended attributes (as OpenDAL writes them)."""
    world.put_native("docs/a.txt", b"a")
    world.put_native("docs/b.txt", b"b")
    world.put_native("docs/c.txt", b"c")
    src = world.dir(SRC)
    try:
        os.setxattr(src / "docs/a.txt", "user.residency-class", b"personal")
    except OSError as exc:  # pragma: no cover - depends on the test machine's filesystem
        pytest.fail(f"the temp filesystem must support user xattrs for this test: {exc}")
    os.setxattr(src / "docs/a.txt", "user.residency-subject", b"US")
    os.setxattr(src / "docs/b.txt", "user.dept", b"hr")
    rules = world.root / "r.yaml"
    rules.write_text("- {from_metadata: true}\n- {metadata: {dept: hr}, class: biometric}\n")
    r = adopt(world, "--rules", str(rules), "--json")
    assert r.code == 0, r.stderr
    assert classes(world.root, "media") == {
        "docs/a.txt": ("personal", "US", None),
        "docs/b.txt": ("biometric", None, None),
        "docs/c.txt": ("unclassified", None, None),
    }


def test_fs_tag_rule_is_one_clear_error(world: World) -> None:
    world.put_native("docs/a.txt", b"a")
    rules = world.root / "r.yaml"
    rules.write_text("- {tags: {team: hr}, class: personal}\n")
    r = adopt(world, "--rules", str(rules))
    assert r.code == 2
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert "only s3 locations have object tags" in lines[0]
    assert classes(world.root, "media") == {}


@pytest.mark.parametrize(
    ("rules", "expect"),
    [
        ("- {metadata: {dept: 1}, class: personal}\n", "values must be strings"),
        ("- {metdata: {dept: hr}, class: personal}\n", "metdata"),
        ("- {from_tags: {klass: c}}\n", "klass"),
        ("- {tags: [a, b], class: public}\n", "expected a mapping"),
        ("- {class: public}\n", "give prefix or regex"),
    ],
)
def test_malformed_rule_is_one_cli_line(world: World, rules: str, expect: str) -> None:
    path = world.root / "bad.yaml"
    path.write_text(rules)
    r = adopt(world, "--rules", str(path))
    assert r.code == 2
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert "rule 1" in lines[0]
    assert expect in lines[0]


def test_reads_only_what_a_key_may_need() -> None:
    """Metadata costs a request per object: none for keys settled by the lookup or key rules."""
    from residency.migrate.adopt import Label

    policy = load_policy(str(REPO / "examples" / "tiktok-2022.yaml"))
    rules = [
        AdoptRule.model_validate(r)
        for r in (
            {"prefix": "pub/", "class": "public", "subject": "US", "count": 0},
            {"prefix": "hr/", "metadata": {"dept": "hr"}, "class": "personal"},
            {"regex": r"\.jpg$", "from_tags": True},
        )
    ]
    c = Classifier(policy, rules=rules, lookup={"hr/x": Label("personal", "US", 1)})
    assert (c.needs_metadata, c.needs_tags) == (True, True)
    assert c.wants("pub/a.jpg") == (False, False)
    assert c.wants("hr/x") == (False, False)
    assert c.wants("hr/y") == (True, False)
    assert c.wants("hr/y.jpg") == (True, True)
    assert c.wants("other") == (False, False)
    assert not Classifier(policy, rules=rules[:1]).needs_metadata


def test_tagging_needs_credentials() -> None:
    cfg = LocationConfig(
        name="src",
        provider="aws",
        region="us-east-1",
        scheme="s3",
        options={"bucket": "bkt", "disable_config_load": "true"},
    )
    with pytest.raises(StorageConfigError, match="needs access_key_id"):
        S3Tags(cfg)


def test_location_without_user_metadata_is_refused_before_listing() -> None:
    from residency.catalog import load_catalog
    from residency.migrate.adopt import AttributeReader
    from residency.storage import open_location

    cfg = LocationConfig(name="mem", provider="aws", region="us-east-1", scheme="memory")
    location = open_location(cfg, load_catalog().facts_for(cfg))
    with pytest.raises(AdoptError, match=r"mem \(memory\) keeps no user metadata"):
        AttributeReader(location, metadata=True, tags=False)
    with pytest.raises(AdoptError, match="only s3 locations have object tags"):
        AttributeReader(location, metadata=False, tags=True)
