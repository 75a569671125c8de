"""Object tags of an s3 location: GetObjectTagging, which OpenDAL does not offer.

botocore signs and retries (throttling, 5xx, dropped connections); the client is built from the
location's own OpenDAL options so it talks to the same endpoint, bucket, root and credentials.
boto3 is imported on first use: it costs a third of a second, and only tag rules need it.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from residency.config import LocationConfig
from residency.storage.errors import (
    BlobNotFound,
    LocationUnavailable,
    StorageConfigError,
    StorageError,
    StoragePermissionDenied,
)

__all__ = ["S3Tags"]

_TRUE = "true"


class S3Tags:
    """Reads tags with at most `concurrency` requests in flight, on a private thread pool."""

    def __init__(self, cfg: LocationConfig, *, concurrency: int = 16) -> None:
        import boto3
        from botocore.config import Config

        opts = {k.lower(): str(v) for k, v in cfg.options.items()}
        env = os.environ if opts.get("disable_config_load", "").lower() != _TRUE else {}
        self.location = cfg.name
        self.bucket = opts.get("bucket", "")
        if not self.bucket:
            raise StorageConfigError(f"location {cfg.name} has no 'bucket' option")
        self.root = opts.get("root", "/").strip("/")
        access_key = opts.get("access_key_id") or env.get("AWS_ACCESS_KEY_ID", "")
        secret_key = opts.get("secret_access_key") or env.get("AWS_SECRET_ACCESS_KEY", "")
        anonymous = opts.get("allow_anonymous", "").lower() == _TRUE
        if not (access_key and secret_key) and not anonymous:
            raise StorageConfigError(
                f"location {cfg.name} needs access_key_id and secret_access_key in its options "
                "(or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) to read tags"
            )
        virtual = opts.get("enable_virtual_host_style", "").lower() == _TRUE
        config = Config(
            signature_version="UNSIGNED" if anonymous and not access_key else "s3v4",
            retries={"mode": "standard", "max_attempts": 4},
            s3={"addressing_style": "virtual" if virtual else "path"},
            max_pool_connections=concurrency,
        )
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=opts.get("endpoint") or None,
            region_name=opts.get("region") or env.get("AWS_REGION") or "us-east-1",
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            aws_session_token=opts.get("session_token") or env.get("AWS_SESSION_TOKEN") or None,
            config=config,
        )
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="s3-tags")

    async def get(self, key: str) -> dict[str, str]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._get, key)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def _get(self, key: str) -> dict[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        full = f"{self.root}/{key}" if self.root else key
        try:
            answer = self._client.get_object_tagging(Bucket=self.bucket, Key=full)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            why = f"GetObjectTagging: HTTP {status} {err.get('Code', '')}: {err.get('Message', '')}"
            if status == 404 and err.get("Code") in ("NoSuchKey", None, ""):
                raise BlobNotFound(
                    "gone since it was listed", location=self.location, key=key
                ) from None
            if status == 403:
                raise StoragePermissionDenied(why, location=self.location, key=key) from None
            if status >= 500 or status == 429:
                raise LocationUnavailable(why, location=self.location, key=key) from None
            raise StorageError(why, location=self.location, key=key) from None
        except BotoCoreError as exc:
            raise LocationUnavailable(
                f"GetObjectTagging: {exc}", location=self.location, key=key
            ) from None
        return {t["Key"]: t.get("Value", "") for t in answer.get("TagSet", [])}
