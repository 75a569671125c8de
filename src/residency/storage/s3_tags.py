"""What OpenDAL does not offer at an s3 location: object tags (GetObjectTagging) and the
incomplete multipart uploads (ListMultipartUploads) whose parts hold bytes no listing shows.

botocore signs and retries (throttling, 5xx, dropped connections); the client is built from the
location's own OpenDAL options so it talks to the same endpoint, bucket, root and credentials.
boto3 is imported on first use: it costs a third of a second, and only tag rules and the drift
scan need it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from residency.config import LocationConfig
from residency.storage.errors import (
    BlobNotFound,
    LocationUnavailable,
    StorageConfigError,
    StorageError,
    StoragePermissionDenied,
)

__all__ = ["OpenUpload", "S3Client", "S3Deleter", "S3Tags", "list_open_uploads", "s3_client"]

_TRUE = "true"


@dataclass(frozen=True)
class S3Client:
    """A botocore client for an s3 location's endpoint, bucket, root and credentials."""

    client: Any
    bucket: str
    root: str
    """the location's root inside the bucket, without slashes at either end ('' for none)"""

    def full_key(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key

    def relative_key(self, full: str) -> str | None:
        """The location's key for a bucket key, or None when it lies outside the root."""
        if not self.root:
            return full
        prefix = self.root + "/"
        return full[len(prefix) :] if full.startswith(prefix) else None


def s3_client(cfg: LocationConfig, *, concurrency: int = 16, purpose: str = "") -> S3Client:
    """A client built from the location's own OpenDAL options (`StorageConfigError` if they
    cannot make one); `purpose` completes the error message ("to read tags")."""
    import boto3
    from botocore.config import Config

    opts = {k.lower(): str(v) for k, v in cfg.options.items()}
    env = os.environ if opts.get("disable_config_load", "").lower() != _TRUE else {}
    bucket = opts.get("bucket", "")
    if not bucket:
        raise StorageConfigError(f"location {cfg.name} has no 'bucket' option")
    access_key = opts.get("access_key_id") or env.get("AWS_ACCESS_KEY_ID", "")
    secret_key = opts.get("secret_access_key") or env.get("AWS_SECRET_ACCESS_KEY", "")
    anonymous = opts.get("allow_anonymous", "").lower() == _TRUE
    if not (access_key and secret_key) and not anonymous:
        raise StorageConfigError(
            f"location {cfg.name} needs access_key_id and secret_access_key in its options "
            f"(or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY){' ' + purpose if purpose else ''}"
        )
    virtual = opts.get("enable_virtual_host_style", "").lower() == _TRUE
    config = Config(
        signature_version="UNSIGNED" if anonymous and not access_key else "s3v4",
        retries={"mode": "standard", "max_attempts": 4},
        s3={"addressing_style": "virtual" if virtual else "path"},
        max_pool_connections=concurrency,
    )
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=opts.get("endpoint") or None,
        region_name=opts.get("region") or env.get("AWS_REGION") or "us-east-1",
        aws_access_key_id=access_key or None,
        aws_secret_access_key=secret_key or None,
        aws_session_token=opts.get("session_token") or env.get("AWS_SESSION_TOKEN") or None,
        config=config,
    )
    return S3Client(client, bucket, opts.get("root", "/").strip("/"))


def client_error(exc: Exception, op: str, location: str, key: str | None) -> StorageError:
    """A botocore error as the `StorageError` subclass that says what to do about it."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return LocationUnavailable(f"{op}: {exc}", location=location, key=key)
    err = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    why = f"{op}: HTTP {status} {err.get('Code', '')}: {err.get('Message', '')}"
    if status == 403:
        return StoragePermissionDenied(why, location=location, key=key)
    if status >= 500 or status == 429:
        return LocationUnavailable(why, location=location, key=key)
    return StorageError(why, location=location, key=key)


class S3Tags:
    """Reads tags with at most `concurrency` requests in flight, on a private thread pool."""

    def __init__(self, cfg: LocationConfig, *, concurrency: int = 16) -> None:
        self.location = cfg.name
        s3 = s3_client(cfg, concurrency=concurrency, purpose="to read tags")
        self._s3 = s3
        self.bucket = s3.bucket
        self.root = s3.root
        self._client: Any = s3.client
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="s3-tags")

    async def get(self, key: str) -> dict[str, str]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._get, key)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def _get(self, key: str) -> dict[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client.get_object_tagging(Bucket=self.bucket, Key=self._s3.full_key(key))
        except ClientError as exc:
            err = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status == 404 and err.get("Code") in ("NoSuchKey", None, ""):
                raise BlobNotFound(
                    "gone since it was listed", location=self.location, key=key
                ) from None
            raise client_error(exc, "GetObjectTagging", self.location, key) from None
        except BotoCoreError as exc:
            raise client_error(exc, "GetObjectTagging", self.location, key) from None
        return {t["Key"]: t.get("Value", "") for t in answer.get("TagSet", [])}


@dataclass(frozen=True, slots=True)
class OpenUpload:
    """A multipart upload begun at an s3 location and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: str


def list_open_uploads(cfg: LocationConfig) -> Iterator[list[OpenUpload]]:
    """Pages of the location's incomplete multipart uploads (ListMultipartUploads, blocking:
    run it in a worker thread). Their parts hold bytes that no listing of objects shows."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = s3_client(cfg, concurrency=1, purpose="to list multipart uploads")
    prefix = s3.root + "/" if s3.root else ""
    try:
        pages = s3.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=s3.bucket, Prefix=prefix
        )
        for page in pages:
            out: list[OpenUpload] = []
            for up in page.get("Uploads", []):
                key = s3.relative_key(str(up["Key"]))
                if key is not None:
                    out.append(OpenUpload(key, str(up["UploadId"]), str(up.get("Initiated", ""))))
            yield out
    except (ClientError, BotoCoreError) as exc:
        raise client_error(exc, "ListMultipartUploads", cfg.name, None) from None
    finally:
        s3.client.close()


DELETE_BATCH = 1000
"""most keys per DeleteObjects request (the S3 limit)"""


class S3Deleter:
    """Deletes many blobs of an s3 location with one DeleteObjects request per 1,000 keys,
    where OpenDAL's binding sends one DELETE per key. Blocking: call it in a worker thread."""

    def __init__(self, cfg: LocationConfig) -> None:
        self.location = cfg.name
        self._s3 = s3_client(cfg, concurrency=2, purpose="to delete in batches")

    def delete(self, keys: list[str]) -> dict[str, str]:
        """Delete `keys`; the keys that could not be deleted, with why (a missing key is
        deleted: S3 reports it so)."""
        from botocore.exceptions import BotoCoreError, ClientError

        failed: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), DELETE_BATCH):
            chunk = unique[i : i + DELETE_BATCH]
            full = {self._s3.full_key(k): k for k in chunk}
            try:
                answer = self._s3.client.delete_objects(
                    Bucket=self._s3.bucket,
                    Delete={"Objects": [{"Key": k} for k in full], "Quiet": True},
                )
            except (ClientError, BotoCoreError) as exc:
                why = str(client_error(exc, "DeleteObjects", self.location, None))
                failed.update((k, why) for k in chunk)
                continue
            for err in answer.get("Errors", []):
                key = full.get(str(err.get("Key", "")), str(err.get("Key", "")))
                failed[key] = f"DeleteObjects: {err.get('Code', '')}: {err.get('Message', '')}"
        return failed

    def close(self) -> None:
        self._s3.client.close()
