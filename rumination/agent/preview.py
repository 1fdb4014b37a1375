"""Show a document exactly as the model would see it (`rumination extract`).

Files are read locally and routed like fetched pages (by their suffix); URLs go through
PageFetcher with the same rules as a run (address checks, limits, allowed hosts from the
settings). The result is the page observation: header, `Visible:` range and neutralised text.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from rumination.agent.browser import page_window
from rumination.errors import FetchError, UsageError
from rumination.models import Page
from rumination.reading.browser_render import page_fetcher
from rumination.reading.documents import SUPPORTED_SUFFIXES, Unreadable, read_document, read_file
from rumination.reading.extract import decode, page_from_bytes, published_date
from rumination.reading.untrusted import one_line
from rumination.settings import Settings

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
            fetcher = page_fetcher(settings)
            try:
                return await fetcher.fetch(target)
            finally:
                await fetcher.aclose()
        return _load_file(Path(target))
    except FetchError as exc:
        raise UsageError(f"{target}: {exc}") from None


def _load_file(path: Path) -> Page:
    """The file as `rumination index` reads it: same title, same refusals (binary data)."""
    if path.is_dir():
        raise UsageError(f"{path} is a folder: extract shows one file "
                         f"(`rumination index {path} --db FILE` reads a folder)")
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    suffix = path.suffix.lower()
    content_type = FILE_TYPES.get(suffix)
    if content_type is None:
        known = ", ".join(sorted(FILE_TYPES))
        raise UsageError(f"{path}: unsupported file type (use one of {known})")
    try:
        body = read_file(path)
        if suffix not in SUPPORTED_SUFFIXES:  # .json, .xhtml: read as a fetched page would be
            if b"\0" in body[:1024]:
                raise Unreadable("binary data, not text")
            return page_from_bytes(path.resolve().as_uri(), content_type, body)
        doc = read_document(path, body)
        if not doc.body.strip():
            raise Unreadable("no readable text (a page may need JavaScript)")
    except Unreadable as exc:
        raise UsageError(f"{path}: {exc}") from None
    published = published_date(decode(body, html=True)) if "html" in content_type else None
    return Page(url=doc.url, title=doc.title, text=doc.body, content_type=content_type,
                published=published)


def view(page: Page, window_chars: int, *, full: bool = False) -> str:
    """The observation for the first window of `page` (the whole text when `full`)."""
    size = max(len(page.text), 1) if full else window_chars
    observation, _ = page_window(
        1, one_line(page.title or page.url), page.url, page.text, 0, size,
        published=page.published, rendered=page.rendered,
    )
    return observation


async def preview(target: str, settings: Settings, *, full: bool = False) -> str:
    return view(await load(target, settings), settings.page_window_chars, full=full)
