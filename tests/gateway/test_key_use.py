"""`residency key list` says when each key was last used: the gateway stamps `last_used` when a
key signs a request correctly (issue #12, item 10: `record_key_use` had no caller)."""

from __future__ import annotations

import json
import time
from typing import Any

import botocore.exceptions
import pytest
from gwserver import Gateway, run_residency


def _keys(gateway: Gateway) -> dict[str, Any]:
    listed = run_residency(
        "key", "list", "--json", "--config", str(gateway.config), cwd=gateway.data_dir.parent
    )
    assert listed.returncode == 0, listed.stderr
    return {k["access_key_id"]: k for k in json.loads(listed.stdout)}


def _last_used(gateway: Gateway, access_key: str, timeout: float = 15.0) -> str | None:
    """The key's `last_used`, waiting a little: it is written beside the request."""
    deadline = time.monotonic() + timeout
    while True:
        value: str | None = _keys(gateway)[access_key]["last_used"]
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_a_key_that_signs_a_request_gets_last_used(gateway: Gateway) -> None:
    assert _keys(gateway)[gateway.access_key]["last_used"] is None
    gateway.s3().list_buckets()
    first = _last_used(gateway, gateway.access_key)
    assert first is not None
    gateway.s3().list_buckets()
    time.sleep(1)
    assert _keys(gateway)[gateway.access_key]["last_used"] == first  # at most every 5 minutes


def test_a_wrong_signature_does_not_count_as_use(gateway: Gateway) -> None:
    impostor = gateway.s3(gateway.other_access_key, "not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        impostor.list_buckets()
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    time.sleep(1)
    assert _keys(gateway)[gateway.other_access_key]["last_used"] is None
