"""Report files: the format a file name implies, checks that an output place is writable
before any work is done, and atomic writes (a crash never leaves half a report behind)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rumination.errors import UsageError

FORMAT_BY_SUFFIX = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html",
                    ".json": "json", ".pdf": "pdf", ".docx": "docx"}  # fmt: skip


def report_format(out: Path | None, explicit: str | None, configured: str) -> str:
    """An explicit --format, else the one the --out file name implies, else `configured`;
    UsageError when the file name has an extension no format writes (a file name without one
    is fine), or when the explicit format and the file name disagree."""
    implied = implied_format(out) if out is not None else None
    if explicit and implied and explicit != implied:
        raise UsageError(f"--format {explicit} contradicts --out {out} (a {implied} file "
                         "name); change one of them")  # fmt: skip
    return explicit or implied or configured


def implied_format(out: Path) -> str | None:
    """The format `out`'s extension names; None without an extension; UsageError for one no
    format writes (`r.txt` must not silently hold Markdown)."""
    suffix = out.suffix.lower()
    if not suffix:
        return None
    if suffix not in FORMAT_BY_SUFFIX:
        formats = ", ".join(dict.fromkeys(FORMAT_BY_SUFFIX.values()))
        raise UsageError(f"--out {out}: reports are {formats}, not {out.suffix}; end the file "
                         f"name in {', '.join(FORMAT_BY_SUFFIX)}")
    return FORMAT_BY_SUFFIX[suffix]


def check_writable_file(path: Path, what: str) -> None:
    """UsageError now if a report could not be written to `path` at the end of a run."""
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder; give a file name")
    _check_folder(path.parent, f"cannot write {what} {path}")


def check_writable_folder(folder: Path, what: str) -> None:
    """UsageError now if files could not be written into `folder` (created if missing)."""
    _check_folder(folder, f"cannot write to {what} {folder}")


def _check_folder(folder: Path, failure: str) -> None:
    """Create `folder` if missing and try a file in it; the error names the folder that
    failed (a file standing where a folder must be, the one that could not be created, or
    the one that takes no new files), not just the last one."""
    blocking = _nearest_existing(folder)
    if not blocking.is_dir():
        raise UsageError(f"{failure}: {blocking} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        failed = exc.filename or folder
        raise UsageError(f"{failure}: cannot create the folder {failed}: "
                         f"{exc.strerror or exc}") from None
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"{failure}: the folder {folder} takes no new files "
                         f"({exc.strerror or exc})") from None


def _nearest_existing(path: Path) -> Path:
    """`path`, else its nearest ancestor that exists."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def write_failure(path: Path | str, exc: OSError, run_id: str, stored: bool,
                  printed: bool = True) -> UsageError:
    """The one-line error for a report that could not be written after its run finished;
    `printed`: a text report went to stdout instead (a PDF or Word file never does)."""
    reason = exc.strerror or str(exc)
    if stored:
        return UsageError(f"cannot write the report to {path}: {reason}; the run is stored, "
                          f"recover it with `rumination runs export {run_id} --report "
                          f"{FORMAT_BY_SUFFIX.get(Path(path).suffix.lower(), 'md')} --out FILE`")
    if not printed:
        return UsageError(f"cannot write the report to {path}: {reason}; the run store is "
                          "off, so it is lost: write it somewhere writable, or keep runs")
    return UsageError(f"cannot write the report to {path}: {reason}; it was printed on "
                      "stdout instead (the run store is off)")  # fmt: skip


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write `content` (text in UTF-8) to `path` whole: a temporary file, then a rename."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a report is an ordinary file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
