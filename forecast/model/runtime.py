"""Process-wide torch settings the callers of the model need (so that they need not import torch)."""

from __future__ import annotations

import torch

__all__ = ["set_threads"]


def set_threads(n: int) -> int:
    """Set torch's intra-op threads to ``n``; returns the count before (to restore it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    return before
