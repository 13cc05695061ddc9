"""Seeds that agree across processes: every random stream of a run derives from ``seed`` through here."""

from __future__ import annotations

import hashlib


def stable_seed(*parts: object) -> int:
    """A 63-bit seed derived from ``parts``; identical across processes and Python versions (SHA-256, never
    Python's salted ``hash()``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
