"""Small file helpers every part shares: content hashes and atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["sha256_file", "write_atomic", "write_json_atomic"]


def sha256_file(path: str | Path) -> str:
    """The sha256 (hex) of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place: readers see the old
    content or the new, never a part."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, doc: Any) -> None:
    """``doc`` as compact, key-sorted JSON, written atomically."""
    write_atomic(path, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8"))
