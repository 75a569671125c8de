"""Built-in policies modelling real law, shipped as YAML next to this module."""

from __future__ import annotations

import difflib
from pathlib import Path

PRESET_DIR = Path(__file__).parent / "presets"
PRESET_PREFIX = "preset:"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_display(path: Path) -> str:
    """How errors and rule sources name a preset file: stable, short, findable in the package."""
    return f"residency/policy/presets/{path.name}"


def preset_path(name: str) -> Path:
    """The file of preset `name`; `KeyError` with close matches when there is no such preset."""
    path = PRESET_DIR / f"{name}.yaml"
    if "/" in name or "\\" in name or not path.is_file():
        names = preset_names()
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"presets: {', '.join(names)}"
        raise KeyError(f"unknown preset {name!r}; {hint}")
    return path
