"""Real small and read-only filesystems for tests: a tmpfs mounted on a test folder (needs CAP_SYS_ADMIN).

Tests that use these skip with a message where mounting is not allowed (an unprivileged container, a user).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(where: Path, *, size_kb: int, read_only: bool = False) -> Iterator[Path]:
    """Mount a `size_kb` KiB tmpfs (optionally read-only) on `where` (created) for the duration."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size_kb}k" + (",ro" if read_only else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(disk: Path, *, leave: int = 0) -> Path:
    """Fill `disk` with a file until it is full, then give back about `leave` bytes; returns the filler."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError:  # ENOSPC: full
            pass
    if leave:
        size = filler.stat().st_size
        with filler.open("r+b") as f:
            f.truncate(max(0, size - leave))
    return filler
