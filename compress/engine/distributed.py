"""Rank awareness for ``torchrun``: only rank 0 writes files; single-process runs are rank 0 of 1."""
from __future__ import annotations

import os


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0
