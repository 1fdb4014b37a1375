"""Local documents as `rumination index` reads them (and `rumination extract` shows them):
Markdown and text with optional front matter (`title:`, `url:`), HTML and PDF; a title from
the front matter, the first `# heading`, the first line of a `.txt` file when it looks like
a title (see `_first_line_title`), the HTML title or the PDF metadata, else the file name;
binary data and unreadable files refused with the reason. Bytes become text by the rules of
`extract.decode` (UTF-8, byte order marks, Windows-1252 for Western text, else a guess);
line ends become "\n", so paragraphs stay apart whatever system wrote the file."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rumination.errors import FetchError
from rumination.reading.extract import decode, html_text, html_title, pdf_page

SUPPORTED_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm", ".pdf"})
MAX_FILE_BYTES = 64 * 1024 * 1024
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
# a .txt file's first line is its title only if it is at most this long...
TITLE_MAX_CHARS = 100
# ...and, when no blank line follows it, the next line is this many times longer (the first
# two lines of a hard-wrapped paragraph are about as long as each other)
TITLE_NEXT_LINE_RATIO = 1.5
# the end of a sentence or of a clause: such a line is text, not a title
_NOT_A_TITLE_END = (".", ",", ";", ":")


class Unreadable(Exception):
    """A file the corpus skips; the message says why."""


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    url: str
    body: str


def parse_document(path: Path, raw: str) -> ParsedDocument:
    """Title, URL and readable text of a text or HTML file (front matter `title:`/`url:` win)."""
    meta: dict[str, str] = {}
    if path.suffix.lower() in {".html", ".htm"}:
        title, body = _html_parts(raw)
    else:
        raw = raw.replace("\r\n", "\n").replace("\r", "\n")
        match = _FRONT_MATTER.match(raw)
        if match:
            for line in match.group(1).splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    meta[key.strip().lower()] = value.strip()
            raw = raw[match.end() :]
        body = raw.strip()
        heading = re.search(r"^#\s+(.+)$", body, re.MULTILINE)
        title = heading.group(1).strip() if heading else ""
        if not title and not meta.get("title") and path.suffix.lower() == ".txt":
            title, body = _first_line_title(body)
    title = meta.get("title") or title or _name_title(path)
    url = meta.get("url") or path.resolve().as_uri()
    return ParsedDocument(title=title, url=url, body=body)


def read_document(path: Path, data: bytes) -> ParsedDocument:
    """The document in a file's bytes; Unreadable when there is no text to index."""
    if path.suffix.lower() == ".pdf":
        return _pdf_document(path, data)
    text = decode(data, html=path.suffix.lower() in {".html", ".htm"})
    if "\x00" in text:
        raise Unreadable("binary data, not text")
    return parse_document(path, text)


def read_file(path: Path) -> bytes:
    """The bytes of a file to index; Unreadable when too large or unreadable."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise Unreadable(f"larger than {MAX_FILE_BYTES // 2**20} MiB")
        return path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot be read ({exc.strerror or type(exc).__name__})") from None


def _html_parts(html: str) -> tuple[str, str]:
    try:
        return html_title(html), html_text(html)
    except Exception as exc:  # hostile input: HTML parsers raise many kinds of errors
        raise Unreadable(f"the HTML could not be parsed ({type(exc).__name__})") from None


def _pdf_document(path: Path, data: bytes) -> ParsedDocument:
    url = path.resolve().as_uri()
    try:
        with _quiet("pypdf"):
            page = pdf_page(url, data)
    except FetchError as exc:  # pypdf missing, a broken PDF, or scanned pages
        raise Unreadable(str(exc)) from None
    title = page.title if page.title != url else _name_title(path)
    return ParsedDocument(title=title, url=url, body=page.text)


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Mute a library's warnings (pypdf logs each flaw of a broken PDF): the skipped file's
    reason already says what went wrong, and stray lines would break the progress bar."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _first_line_title(body: str) -> tuple[str, str]:
    """(title, the text after it) when the first line of a plain-text body looks like a
    title: it has a letter, is at most TITLE_MAX_CHARS long, does not end like a sentence or
    a clause, and text follows it, after a blank line or on a line at least
    TITLE_NEXT_LINE_RATIO times as long. Else ("", body): the file name will be the title.
    The title line leaves the body, so the first sentence does not start with it."""
    first, _, rest = body.partition("\n")
    title = " ".join(first.split())
    next_line = rest.split("\n", 1)[0].strip()
    looks_like_title = (
        any(char.isalpha() for char in title)
        and len(title) <= TITLE_MAX_CHARS
        and not title.endswith(_NOT_A_TITLE_END)
        and bool(rest.strip())
        and (not next_line or len(next_line) >= TITLE_NEXT_LINE_RATIO * len(title))
    )
    return (title, rest.strip()) if looks_like_title else ("", body)


def _name_title(path: Path) -> str:
    return path.stem.replace("-", " ").replace("_", " ")


