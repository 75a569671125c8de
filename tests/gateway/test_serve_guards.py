"""`residency serve` refuses to start beside another server: on its port, or on its data dir.

A second server on a port in use (each with its own database) leaves clients answered by
either at random; two on one data directory race on the same files. Each refusal is one line
and exit 2, before anything is opened (issue #12, item 7).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gwserver import (
    Server,
    _free_port,
    one_location_config,
    serve_expecting_refusal,
    start_server,
)


@pytest.fixture
def first(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "first"
    root.mkdir()
    server = start_server(["--config", str(one_location_config(root))], root)
    yield server
    server.stop()


def _port(server: Server) -> str:
    return server.endpoint.rsplit(":", 1)[1]


def test_a_port_in_use_is_refused_in_one_line(first: Server, tmp_path: Path) -> None:
    root = tmp_path / "second"
    root.mkdir()
    port = _port(first)
    refused = serve_expecting_refusal(
        "--config", str(one_location_config(root)), "--port", port, cwd=root
    )
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert refused.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use; stop that server or pick --port"
    ]
    assert not (root / "data" / "residency.db").exists()  # refused before opening anything
    assert first.proc.poll() is None


def test_a_data_dir_held_by_a_server_is_refused_naming_its_pid(
    first: Server, tmp_path: Path
) -> None:
    config = first.root / "residency.yaml"
    refused = serve_expecting_refusal(
        "--config", str(config), "--port", str(_free_port()), cwd=tmp_path
    )
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    data_dir = (first.root / "data").resolve()
    assert refused.stderr.strip().splitlines() == [
        f"error: {data_dir} is in use by another residency serve (pid {first.proc.pid}); "
        "stop it or pass another --data-dir"
    ]
    assert first.proc.poll() is None


def test_the_data_dir_is_free_again_once_the_server_stopped(tmp_path: Path) -> None:
    """The lock is the kernel's: a stopped server leaves nothing behind to clean up."""
    config = one_location_config(tmp_path)
    one = start_server(["--config", str(config)], tmp_path)
    one.stop()
    two = start_server(["--config", str(config)], tmp_path)
    try:
        assert two.proc.poll() is None
        pid = (tmp_path / "data" / "serve.lock").read_text().strip()
        assert pid == str(two.proc.pid)
    finally:
        two.stop()
