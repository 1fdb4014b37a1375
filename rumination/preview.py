"""Show a document exactly as the model would see it (`rumination extract`).

Files are read locally and routed like fetched pages (by their suffix); URLs go through
PageFetcher with the same rules as a run (address checks, limits, allowed hosts from the
settings). The result is the page observation: header, `Visible:` range and neutralised text.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from .browser import page_window
from .errors import FetchError, UsageError
from .extract import page_from_bytes
from .fetch import PageFetcher
from .models import Page
from .settings import Settings
from .untrusted import one_line

FILE_TYPES = {
    ".html": "text/html", ".htm": "text/html", ".xhtml": "application/xhtml+xml",
    ".md": "text/markdown", ".markdown": "text/markdown", ".txt": "text/plain",
    ".json": "application/json", ".pdf": "application/pdf",
}


async def load(target: str, settings: Settings) -> Page:
    """The Page behind a file path or an http(s) URL; UsageError with a reason otherwise."""
    scheme = urlsplit(target).scheme.lower() if "://" in target else ""
    try:
        if scheme:
            if scheme not in ("http", "https"):
                raise UsageError(f"{target}: only files and http(s) URLs can be extracted")
            fetcher = PageFetcher.from_settings(settings)
            try:
                return await fetcher.fetch(target)
            finally:
                await fetcher.aclose()
        return _load_file(Path(target))
    except FetchError as exc:
        raise UsageError(f"{target}: {exc}") from None


def _load_file(path: Path) -> Page:
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    content_type = FILE_TYPES.get(path.suffix.lower())
    if content_type is None:
        known = ", ".join(sorted(FILE_TYPES))
        raise UsageError(f"{path}: unsupported file type (use one of {known})")
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return page_from_bytes(path.resolve().as_uri(), content_type, body)


def view(page: Page, window_chars: int, *, full: bool = False) -> str:
    """The observation for the first window of `page` (the whole text when `full`)."""
    size = max(len(page.text), 1) if full else window_chars
    observation, _ = page_window(
        1, one_line(page.title or page.url), page.url, page.text, 0, size,
        published=page.published,
    )
    return observation


async def preview(target: str, settings: Settings, *, full: bool = False) -> str:
    return view(await load(target, settings), settings.page_window_chars, full=full)
