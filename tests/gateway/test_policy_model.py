"""The cumulative policy model at the gateway, through boto3: unknowns are refused with a hint,
several subjects bring all their laws, and a bucket's policy can only narrow the operator's."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest
from gwserver import Gateway
from test_residency import new_blobs, new_bucket, put, residency_headers, snapshot


def _error(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[int, str, str]:
    response = exc.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


@pytest.mark.parametrize(
    ("meta", "hint"),
    [
        ({"residency-class": "health", "residency-subject": "US"}, "personal.health"),
        ({"residency-class": "financial", "residency-subject": "US"}, "personal.financial"),
        ({"residency-class": "personal", "residency-subject": "UK"}, "did you mean GB"),
        ({"residency-class": "personal", "residency-subject": "EL"}, "did you mean GR"),
        ({"residency-class": "personal", "residency-subject": "XX"}, "ISO 3166-1"),
        ({"residency-class": "personal", "residency-subjects": str(2**53)}, "more data subjects"),
    ],
)
def test_unknown_class_or_subject_is_400_with_what_to_send_and_writes_nothing(
    gateway: Gateway, moto_server: Any, meta: dict[str, str], hint: str
) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    before = snapshot(gateway, moto_server)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        put(s3, bucket, "k", b"x" * 1000, **meta)
    status, code, message = _error(exc)
    assert (status, code) == (400, "InvalidArgument")
    assert hint in message
    assert "Traceback" not in message
    assert "{" not in message
    assert snapshot(gateway, moto_server) == before


def test_several_subjects_bring_every_law_that_protects_them(
    gateway: Gateway, moto_server: Any
) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    before = snapshot(gateway, moto_server)
    response = put(
        s3,
        bucket,
        "pair.json",
        b"{}",
        **{"residency-class": "personal", "residency-subject": "us, de"},
    )
    headers = residency_headers(response)
    # GDPR (DE) keeps it in the EEA; Clean Cloud (US) keeps it off a CN-controlled vendor.
    assert headers["x-residency-locations"] == "de"
    assert headers["x-residency-subject"] == "DE,US"
    assert set(headers["x-residency-rule"].split(",")) == {
        "clean-cloud-us-personal",
        "gdpr-eea-or-adequate",
    }
    assert set(new_blobs(before, snapshot(gateway, moto_server))) == {"de"}


def test_conflicting_laws_refuse_and_name_the_rules(gateway: Gateway, moto_server: Any) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    before = snapshot(gateway, moto_server)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        put(s3, bucket, "k", b"x", **{"residency-class": "personal", "residency-subject": "CN,DE"})
    status, code, message = _error(exc)
    assert (status, code) == (403, "ResidencyViolation")
    assert "gdpr-eea-or-adequate" in message
    assert "pipl-mainland-only" in message
    assert "the rules conflict" in message
    assert snapshot(gateway, moto_server) == before


def test_a_bucket_policy_can_only_narrow(gateway: Gateway, moto_server: Any) -> None:
    s3 = gateway.s3()
    # The attack of issue 12: a tenant names a permissive preset to escape the operator's laws.
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        new_bucket(s3, **{"x-residency-policy": "preset:catch-all"})
    assert _error(exc)[1] == "InvalidArgument"
    for preset in ("us-doj-bulk-data", "default", "eu-gdpr"):
        bucket = new_bucket(s3, **{"x-residency-policy": f"preset:{preset}"})
        before = snapshot(gateway, moto_server)
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            put(
                s3,
                bucket,
                "cn/health.json",
                b"{}",
                **{"residency-class": "personal.health", "residency-subject": "CN"},
            )
        assert _error(refused)[1] == "ResidencyViolation"
        assert "pipl-mainland-only" in _error(refused)[2]
        assert snapshot(gateway, moto_server) == before
    # And it does narrow: under eu-gdpr, personal data of an unknown subject is held to the
    # EEA even though the operator's policy alone would refuse it as every subject at once.
    bucket = new_bucket(s3, **{"x-residency-policy": "preset:eu-gdpr"})
    ok = put(
        s3, bucket, "fr.json", b"{}", **{"residency-class": "personal", "residency-subject": "FR"}
    )
    assert residency_headers(ok)["x-residency-locations"] == "de"


def _eu_health_source(s3: Any) -> tuple[str, str]:
    """An EU health record whose class came only from its bucket's defaults."""
    bucket = new_bucket(
        s3,
        **{"x-residency-default-class": "personal.health", "x-residency-default-subject": "DE"},
    )
    put(s3, bucket, "record.json", b'{"diagnosis": "x"}')
    head = s3.head_object(Bucket=bucket, Key="record.json")
    assert residency_headers(head)["x-residency-class"] == "personal.health"
    assert residency_headers(head)["x-residency-locations"] == "de"
    return bucket, "record.json"


def test_a_copy_keeps_the_class_its_source_got_from_a_bucket_default(
    gateway: Gateway, moto_server: Any
) -> None:
    s3 = gateway.s3()
    src_bucket, src_key = _eu_health_source(s3)
    plain = new_bucket(s3)  # no defaults: unlabelled data here would count as public
    before = snapshot(gateway, moto_server)
    s3.copy_object(Bucket=plain, Key="copy.json", CopySource={"Bucket": src_bucket, "Key": src_key})
    head = residency_headers(s3.head_object(Bucket=plain, Key="copy.json"))
    assert head["x-residency-class"] == "personal.health"
    assert head["x-residency-subject"] == "DE"
    assert head["x-residency-locations"] == "de"
    assert set(new_blobs(before, snapshot(gateway, moto_server))) == {"de"}
    # REPLACE with explicit values is the one way to restate what the copy is.
    s3.copy_object(
        Bucket=plain,
        Key="restated.json",
        CopySource={"Bucket": src_bucket, "Key": src_key},
        MetadataDirective="REPLACE",
        Metadata={"residency-class": "personal", "residency-subject": "FR"},
    )
    restated = residency_headers(s3.head_object(Bucket=plain, Key="restated.json"))
    assert (restated["x-residency-class"], restated["x-residency-subject"]) == ("personal", "FR")


def test_upload_part_copy_cannot_move_a_record_into_a_laxer_upload(
    gateway: Gateway, moto_server: Any
) -> None:
    s3 = gateway.s3()
    src_bucket, src_key = _eu_health_source(s3)
    target = new_bucket(s3)
    upload = s3.create_multipart_upload(
        Bucket=target, Key="big.bin", Metadata={"residency-class": "public"}
    )
    placed = residency_headers(upload)["x-residency-locations"].split(",")
    assert placed != ["de"]  # public data went to the cheapest place, outside the EEA
    before = snapshot(gateway, moto_server)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.upload_part_copy(
            Bucket=target,
            Key="big.bin",
            UploadId=upload["UploadId"],
            PartNumber=1,
            CopySource={"Bucket": src_bucket, "Key": src_key},
        )
    status, code, message = _error(exc)
    assert (status, code) == (403, "ResidencyViolation")
    assert "UploadPartCopy would put personal.health data (subject DE)" in message
    assert "gdpr-eea-or-adequate" in message
    assert snapshot(gateway, moto_server) == before


def test_the_operator_sets_a_bucket_policy_with_an_audited_command(
    gateway: Gateway, tmp_path: Any
) -> None:
    import json

    from gwserver import run_residency

    s3 = gateway.s3()
    bucket = new_bucket(s3)
    before = put(s3, bucket, "a.txt", b"a", **{"residency-class": "public"})
    assert residency_headers(before)["x-residency-locations"] != "de"  # cheapest is elsewhere
    germany = tmp_path / "germany.yaml"
    germany.write_text(
        "name: germany\nrules:\n  - id: all-in-germany\n    constraints: {allow_countries: [DE]}\n"
    )

    def cli(*args: str) -> Any:
        return run_residency(
            "bucket", "policy", *args, "--config", str(gateway.config), cwd=gateway.config.parent
        )

    shown = cli(bucket, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["policy"] is None
    changed = cli(bucket, str(germany), "--json")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["policy"] == str(germany)
    after = put(s3, bucket, "b.txt", b"b", **{"residency-class": "public"})
    assert residency_headers(after)["x-residency-locations"] == "de"
    audit = run_residency(
        "audit",
        "export",
        "--kind",
        "admin",
        "--config",
        str(gateway.config),
        cwd=gateway.config.parent,
    )
    assert "set_bucket_policy" in audit.stdout, audit.stderr
    bad = cli(bucket, "preset:nope")
    assert bad.returncode == 2
    assert "unknown preset" in bad.stderr
    assert cli("no-such-bucket", "--json").returncode == 2
    # A bucket policy file that disappears refuses writes: what it would add is unknown.
    gone = tmp_path / "gone.yaml"
    gone.write_text(germany.read_text().replace("germany", "gone"))
    assert cli(bucket, str(gone)).returncode == 0
    gone.unlink()
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        put(s3, bucket, "c.txt", b"c", **{"residency-class": "public"})
    status, code, message = _error(refused)
    assert (status, code) == (403, "ResidencyViolation")
    assert "cannot be loaded" in message
    assert cli(bucket, "--clear").returncode == 0
    cleared = put(s3, bucket, "d.txt", b"d", **{"residency-class": "public"})
    assert residency_headers(cleared)["x-residency-locations"] != "de"
