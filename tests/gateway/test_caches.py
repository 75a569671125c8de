"""Per-process caches on the gateway's hot path honour changes within the documented bound.

The access-key cache keeps a principal's attributes for at most `KEY_CACHE_SECONDS`; Cedar
decisions are cached per (principal attributes, action, object attributes), so a changed
attribute is a new decision as soon as the key cache has reloaded it.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import botocore.exceptions
import pytest
from gwserver import Gateway, run_residency

from residency.gateway.auth import KEY_CACHE_SECONDS

HEALTH = {"residency-class": "personal.health", "residency-subject": "US"}


def cli(gateway: Gateway, *args: str) -> Any:
    done = run_residency(*args, "--config", str(gateway.config), cwd=gateway.data_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_changed_principal_attributes_apply_within_the_bound(gateway: Gateway) -> None:
    name = f"r{uuid.uuid4().hex[:8]}"
    cli(gateway, "principal", "set", f"acme/{name}", "--country", "US")
    key = json.loads(
        cli(gateway, "key", "create", "--tenant", "acme", "--name", name, "--json").stdout
    )
    reader = gateway.s3(key["access_key_id"], key["secret_access_key"])
    bucket = f"c-{uuid.uuid4().hex[:10]}"
    gateway.s3().create_bucket(Bucket=bucket)
    gateway.s3().put_object(Bucket=bucket, Key="unknown.csv", Body=b"?", Metadata=HEALTH)
    for _ in range(3):  # warm both caches with the allowed decision
        assert reader.get_object(Bucket=bucket, Key="unknown.csv")["Body"].read() == b"?"

    cli(gateway, "principal", "set", f"acme/{name}", "--country", "CN")  # now a covered person
    time.sleep(KEY_CACHE_SECONDS + 0.5)  # the documented bound of the gateway's key cache
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        reader.get_object(Bucket=bucket, Key="unknown.csv")
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    assert "doj-undeclared-volume" in exc.value.response["Error"]["Message"]

    cli(gateway, "principal", "set", f"acme/{name}", "--country", "US")
    time.sleep(KEY_CACHE_SECONDS + 0.5)
    assert reader.get_object(Bucket=bucket, Key="unknown.csv")["Body"].read() == b"?"


def test_reclassified_object_is_judged_afresh(gateway: Gateway) -> None:
    name = f"r{uuid.uuid4().hex[:8]}"
    cli(gateway, "principal", "set", f"acme/{name}", "--country", "CN")
    key = json.loads(
        cli(gateway, "key", "create", "--tenant", "acme", "--name", name, "--json").stdout
    )
    reader = gateway.s3(key["access_key_id"], key["secret_access_key"])
    bucket = f"c-{uuid.uuid4().hex[:10]}"
    gateway.s3().create_bucket(Bucket=bucket)
    gateway.s3().put_object(Bucket=bucket, Key="k.csv", Body=b"public", Metadata={})
    assert reader.get_object(Bucket=bucket, Key="k.csv")["Body"].read() == b"public"
    # Overwritten as undeclared US health data: the cached "allowed" must not apply.
    gateway.s3().put_object(Bucket=bucket, Key="k.csv", Body=b"health", Metadata=HEALTH)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        reader.get_object(Bucket=bucket, Key="k.csv")
    assert "doj-undeclared-volume" in exc.value.response["Error"]["Message"]
