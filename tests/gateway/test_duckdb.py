"""DuckDB's httpfs extension against the real gateway: COPY ... TO 's3://…' (always a multipart
upload; a larger file in several parts), byte-exact `read_blob`, `read_csv`/`read_parquet`
over a glob (ListObjectsV2), and a refused write that surfaces as DuckDB's IOException carrying
`ResidencyViolation`.

DuckDB sends no user metadata, so the classification comes from the bucket's default class
(`x-residency-default-class` on CreateBucket, sent here with boto3). The extension is the one
from the `duckdb-extension-httpfs` wheel, loaded from its file: never `INSTALL httpfs` from the
network, and autoloading is off so a missing extension fails instead of downloading.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# A missing client fails the test run loudly (both are in the `test` extra), never skips.
import duckdb
import duckdb_extension_httpfs  # type: ignore[import-untyped]
import pytest
from gwserver import Gateway

MIB = 1024 * 1024


def httpfs_extension() -> Path:
    found = sorted(
        Path(duckdb_extension_httpfs.__file__).parent.glob(
            f"extensions/v{duckdb.__version__}/httpfs.duckdb_extension"
        )
    )
    assert found, f"no httpfs extension for DuckDB {duckdb.__version__} in duckdb-extension-httpfs"
    return found[0]


@pytest.fixture(scope="module")
def con(gateway: Gateway) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    connection.execute(f"LOAD '{httpfs_extension()}'")
    scheme, host = gateway.endpoint.split("://", 1)
    settings = {
        "s3_endpoint": host,
        "s3_url_style": "path",
        "s3_use_ssl": scheme == "https",
        "s3_region": gateway.region,
        "s3_access_key_id": gateway.access_key,
        "s3_secret_access_key": gateway.secret_key,
        # Parts of 6 MB (S3's minimum is 5 MiB) so a ~14 MB file goes up in three parts.
        "s3_uploader_max_filesize": "60MB",
        "s3_uploader_max_parts_per_file": 10,
    }
    for name, value in settings.items():
        connection.execute(f"SET {name} = ?", [value])
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture(scope="module")
def s3(gateway: Gateway) -> Any:
    return gateway.s3()


def new_bucket(s3: Any, **headers: str) -> str:
    """CreateBucket with residency headers (a bucket default class), sent by boto3."""
    name = f"dd-{uuid.uuid4().hex[:12]}"

    def add(request: Any, **_: Any) -> None:
        for key, value in headers.items():
            request.headers[key] = value

    s3.meta.events.register_first("before-sign.s3.CreateBucket", add)
    try:
        s3.create_bucket(Bucket=name)
    finally:
        s3.meta.events.unregister("before-sign.s3.CreateBucket", add)
    return name


def test_duckdb_copy_to_and_read_back(
    con: duckdb.DuckDBPyConnection, s3: Any, gateway: Gateway
) -> None:
    bucket = new_bucket(s3, **{"x-residency-default-class": "public"})
    url = f"s3://{bucket}"
    con.execute(
        f"COPY (SELECT i AS id, sha256(i::VARCHAR) AS h FROM range(1000) t(i)) "
        f"TO '{url}/data/small.parquet' (FORMAT parquet)"
    )
    con.execute(
        f"COPY (SELECT i AS id, 'row ' || i AS name FROM range(1000, 1500) t(i)) "
        f"TO '{url}/data/more.parquet' (FORMAT parquet)"
    )
    # ~14 MB of CSV: a multipart upload in several parts.
    con.execute(
        f"COPY (SELECT i AS id, sha256(i::VARCHAR) AS h FROM range(200000) t(i)) "
        f"TO '{url}/csv/big.csv' (FORMAT csv, HEADER)"
    )

    head = s3.head_object(Bucket=bucket, Key="csv/big.csv")
    # Classified by the bucket's default class.
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-residency-class"] == "public"
    assert head["ContentLength"] > 12 * MIB
    assert head["ETag"].endswith('-3"'), head["ETag"]
    stored = s3.get_object(Bucket=bucket, Key="csv/big.csv")["Body"].read()
    assert stored.startswith(b"id,h\n0,")
    assert stored.count(b"\n") == 200_001

    # Byte-exact reads: what DuckDB wrote, and random bytes written by another client.
    blob = con.execute(f"SELECT content FROM read_blob('{url}/csv/big.csv')").fetchone()
    assert blob is not None
    assert hashlib.sha256(blob[0]).digest() == hashlib.sha256(stored).digest()
    noise = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="noise.bin", Body=noise)
    blob = con.execute(f"SELECT content FROM read_blob('{url}/noise.bin')").fetchone()
    assert blob is not None
    assert blob[0] == noise

    # Listing: a glob is a ListObjectsV2 by prefix.
    files = con.execute(f"SELECT file FROM glob('{url}/data/*.parquet') ORDER BY file").fetchall()
    assert files == [(f"{url}/data/more.parquet",), (f"{url}/data/small.parquet",)]
    count, total = con.execute(
        f"SELECT count(*), sum(id) FROM read_parquet('{url}/data/*.parquet')"
    ).fetchall()[0]
    assert (count, total) == (1500, sum(range(1500)))
    row = con.execute(f"SELECT h FROM read_csv('{url}/csv/big.csv') WHERE id = 199999").fetchone()
    assert row == (hashlib.sha256(b"199999").hexdigest(),)
    # Range reads of the Parquet footer and columns, then a rewrite of the same key.
    con.execute(f"COPY (SELECT 42 AS id) TO '{url}/data/small.parquet' (FORMAT parquet)")
    assert con.execute(f"SELECT id FROM '{url}/data/small.parquet'").fetchall() == [(42,)]


def test_duckdb_refused_write_is_an_io_error_with_residency_violation(
    con: duckdb.DuckDBPyConnection, s3: Any
) -> None:
    bucket = new_bucket(
        s3,
        **{"x-residency-default-class": "personal.health", "x-residency-default-subject": "CN"},
    )
    # DuckDB raises its HTTPException (an IOException) with the gateway's error in the text.
    with pytest.raises(duckdb.IOException, match="ResidencyViolation") as exc:
        con.execute(f"COPY (SELECT 1 AS id) TO 's3://{bucket}/cn/records.csv' (FORMAT csv)")
    assert "403" in str(exc.value)
    assert "pipl-mainland-only" in str(exc.value)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
