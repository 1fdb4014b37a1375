"""The user's cache folder, $XDG_CACHE_HOME/rumination (default ~/.cache/rumination).

Everything kept there can be rebuilt (the demo corpus's index, the HTTP cache), so a cache
folder that cannot be written is no reason to stop: the process uses a temporary folder of
its own instead, says so in one line on stderr, and removes it when it exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
_fallbacks: dict[Path, Path] = {}  # unwritable cache folder -> this process's stand-in


def user_cache_dir() -> Path:
    """The cache folder, created if needed; a temporary one if it cannot be written."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base) / "rumination"
    if folder in _fallbacks:
        return _fallbacks[folder]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # the folder exists and takes new files
            pass
    except OSError as exc:
        return _fall_back(folder, exc)
    return folder


def _fall_back(folder: Path, exc: OSError) -> Path:
    stand_in = Path(tempfile.mkdtemp(prefix="rumination-cache-"))
    atexit.register(shutil.rmtree, stand_in, ignore_errors=True)
    _fallbacks[folder] = stand_in
    log.warning("warning: cannot write the cache folder %s (%s); using %s until this process "
                "ends", folder, exc.strerror or exc, stand_in)  # fmt: skip
    return stand_in
