from __future__ import annotations

from pathlib import Path

import pytest
from report_support import World, make_world, seed


@pytest.fixture
async def world(tmp_path: Path) -> World:
    w = make_world(tmp_path)
    await seed(w)
    return w
