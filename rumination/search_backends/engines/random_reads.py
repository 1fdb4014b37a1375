"""Random-read advice for the doc store of a Tantivy index (Linux; elsewhere nothing).

Tantivy maps its files into memory. When a search shows a passage whose stored text is not
in the page cache, the page fault reads it from disk, and the kernel reads ahead around it
as much as the device's read-ahead allows (8 MiB on this project's test machine): ten
passages shown could cost tens of megabytes read. Tantivy can open an index with
`MADV_RANDOM` advice (`MmapDirectory::open_with_madvice`), but its Python bindings do not
offer that, so this module gives the advice itself, to the mappings of the doc store files
(`*.store`) listed in /proc/self/maps. The postings keep the kernel's read-ahead: they are
read in runs, and random advice on them made cold searches slower (docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import mmap
import os
from collections.abc import Callable
from pathlib import Path

STORE_SUFFIX = ".store"
_MAPS = Path("/proc/self/maps")


def _madvise() -> Callable[[int, int, int], int] | None:
    if not hasattr(mmap, "MADV_RANDOM"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_MADVISE = _madvise()


def advise_random_reads(folder: Path, suffix: str = STORE_SUFFIX) -> int:
    """Advises random reads on this process's mappings of the `suffix` files under
    `folder`; how many mappings were advised (0 where the system has no such advice)."""
    if _MADVISE is None:
        return 0
    try:
        lines = _MAPS.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return 0
    under = str(folder.resolve()) + os.sep
    advised = 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith(under) or not fields[5].endswith(suffix):
            continue
        start, end = (int(address, 16) for address in fields[0].split("-"))
        advised += _MADVISE(start, end - start, mmap.MADV_RANDOM) == 0
    return advised
