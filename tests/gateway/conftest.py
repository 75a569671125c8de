"""The `gateway` fixture: a real `residency serve` on loopback (see gwserver.py).

Locations: fs directories standing for AWS us-east-1, OCI us-ashburn-1 (both US), Alibaba
ap-southeast-1 (SG, vendor HQ CN) and AWS eu-central-1 (DE), plus an OpenDAL `s3` location on
the session moto server standing for GCP us-central1, so the cross-cloud path is real HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gwserver import REGION, Gateway, create_key, start_server, write_config


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, moto_server: Any) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("gateway")
    bucket = moto_server.new_bucket()
    config, dirs = write_config(root, moto_server, bucket)
    access, secret = create_key(config, root, "acme")
    other_access, other_secret = create_key(config, root, "globex")
    server = start_server(["--config", str(config)], root)
    try:
        yield Gateway(
            endpoint=server.endpoint,
            access_key=access,
            secret_key=secret,
            region=REGION,
            data_dir=root / "data",
            config=config,
            server=server,
            moto_bucket=bucket,
            other_access_key=other_access,
            other_secret_key=other_secret,
            _locations=dirs,
        )
    finally:
        server.stop()
