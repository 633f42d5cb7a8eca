"""Counter-based seeding: every random draw is a pure function of (seed, purpose, index).

Nothing carries generator state from one outer step to the next, so a run resumed from a checkpoint
draws exactly what an uninterrupted run draws, a population member k draws exactly what a run
with seed + k draws, and meta-training ("train-*") and evaluation ("eval-*") can never share a draw.
"""

from __future__ import annotations

import hashlib

import torch


def derive(*parts: object) -> int:
    """A 63-bit seed from any sequence of printable parts."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def generator(*parts: object) -> torch.Generator:
    """A CPU generator for (seed, purpose, index): draws do not depend on the device."""
    return torch.Generator().manual_seed(derive(*parts))
