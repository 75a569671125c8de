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
