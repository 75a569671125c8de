"""residency: keep every object only where the law allows, move it when that changes, prove it."""

__version__ = "0.1.0"
