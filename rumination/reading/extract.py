"""Turn a document's bytes into readable text.

Routing by content type, with sniffing when the type is missing or generic: HTML through
trafilatura with a BeautifulSoup fallback when trafilatura finds nothing; PDF through pypdf
when it is installed (`rumination[pdf]`), text per page; plain text, Markdown, CSV, XML and
JSON as they are; anything else is refused with a short reason.

Character sets, in order: a byte order mark; the HTTP charset (except that a page declared
Latin-1/ASCII that is valid UTF-8 is read as UTF-8, the common server default gone wrong);
for HTML a `<meta charset>` / `http-equiv` / XML declaration in the first bytes; UTF-8 if
the bytes are valid UTF-8; Windows-1252 (Latin-1 plus curly quotes, dashes and the euro sign)
when they read as Western European text (see `_reads_as_western`); charset_normalizer's
guess; Windows-1252 with replacement characters as the last resort. charset_normalizer alone
misreads Western text, short or long (naïve ½ as Farsi, French as Windows-1250), which is why
that check comes first. Labels are read the way browsers read them (WHATWG): `iso-8859-1`
means windows-1252, `gb2312`/`gbk` mean GB18030, and so on. Local files (`rumination index`,
`rumination extract`, and so `click` on a corpus document) are decoded by the same rules,
with no declared charset.
"""

from __future__ import annotations

import codecs
import io
import re

import lxml.etree
import lxml.html
import trafilatura
from bs4 import BeautifulSoup
from htmldate import find_date

from rumination.errors import FetchError
from rumination.models import Page

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset(
    {"application/json", "application/xml", "application/x-ndjson", "application/ld+json"}
)
PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
# types that say nothing about the content: look at the bytes instead
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream",
                           "application/unknown", "unknown/unknown"})
PDF_NEEDS_PYPDF = "unsupported: PDF reading needs pypdf (install rumination[pdf])"

# UTF-32's little-endian mark starts like UTF-16's: it is looked for first
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
         (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
# the non-ASCII letters of Windows-1252, and the punctuation found inside Western words
# (don’t, col·lecció, soft hyphens, dashes)
_CP1252_LETTERS = "ƒŠŒŽšœžŸªµºÀ-ÖØ-öø-ÿ"
_IN_WORD_PUNCTUATION = "’‘·–—\xad"
_LONG_NON_ASCII_RUN = re.compile(f"[{_CP1252_LETTERS}]{{4,}}")
_SYMBOL_IN_WORD = re.compile(
    f"[A-Za-z{_CP1252_LETTERS}][^\\x00-\\x7f{_CP1252_LETTERS}{_IN_WORD_PUNCTUATION}]"
    f"[A-Za-z{_CP1252_LETTERS}]"
)
_NON_ASCII_LETTER = re.compile(f"[{_CP1252_LETTERS}]")
_ASCII_LETTER = re.compile("[A-Za-z]")
_SAMPLE_BYTES = 200_000
# WHATWG label -> the Python codec that decodes like a browser does
_ALIASES = {
    **dict.fromkeys(["iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "ascii",
                     "us-ascii", "windows-1252", "x-cp1252", "cp819", "iso_8859-1"], "cp1252"),
    **dict.fromkeys(["gb2312", "gbk", "x-gbk", "gb_2312-80", "csgb2312", "chinese",
                     "iso-ir-58", "gb18030"], "gb18030"),
    **dict.fromkeys(["shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "csshiftjis",
                     "windows-31j"], "cp932"),
    **dict.fromkeys(["euc-kr", "ks_c_5601-1987", "korean", "windows-949", "csksc56011987"],
                    "cp949"),
    **dict.fromkeys(["big5", "big5-hkscs", "x-x-big5", "cn-big5", "csbig5"], "big5hkscs"),
    **dict.fromkeys(["tis-620", "iso-8859-11", "windows-874"], "cp874"),
    **dict.fromkeys(["iso-8859-9", "latin5", "windows-1254"], "cp1254"),
}
_LATIN1_DEFAULTS = frozenset({"cp1252"})
_META_CHARSET = re.compile(
    rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-z0-9_.:-]+)|<\?xml[^>]*encoding\s*=\s*["']([a-z0-9_.:-]+)""",
    re.IGNORECASE,
)
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?\s*([^"';\s]+)""", re.IGNORECASE)


def html_title(html: str) -> str:
    """The page's <title>, else its first h1/h2 (lxml: a fraction of BeautifulSoup's time)."""
    try:
        tree = lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):  # empty, or an XML declaration in a str
        return _soup_title(html)
    title = tree.findtext(".//title")
    if title and title.strip():
        return " ".join(title.split())
    for heading in tree.iter("h1", "h2"):
        return " ".join(heading.text_content().split())
    return ""


def published_date(html: str) -> str | None:
    """The date the page says it was published (its metadata and markup only: no guessing
    from the text, where a stray date would mislead the model)."""
    try:
        found = find_date(html, original_date=True, extensive_search=False)
    except Exception:  # htmldate on malformed markup: a missing date is no reason to fail
        return None
    return str(found) if found else None


def _soup_title(html: str) -> str:
    soup = BeautifulSoup(html, "html.parser")
    if soup.title and soup.title.string:
        return " ".join(soup.title.string.split())
    heading = soup.find(["h1", "h2"])
    return " ".join(heading.get_text(" ").split()) if heading else ""


def html_text(html: str, url: str | None = None) -> str:
    """Main text of an HTML page, or "" when nothing readable is there. Readers' comments are
    left out: not the page's own text, and not a source to cite (bench/extraction.py: token F1
    0.959 without them, 0.948 with)."""
    text = trafilatura.extract(
        html, url=url, include_links=False, include_tables=True, favor_recall=True,
        include_comments=False,
    )
    if text and text.strip():
        return text.strip()
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "footer", "header"]):
        tag.decompose()
    lines = (" ".join(line.split()) for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def codec_for(label: str | None) -> str | None:
    """The Python codec for a charset label, or None when the label is unknown or unsafe."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
        "".encode(name)  # a text encoding, not base64 or rot13
    except (LookupError, ValueError):
        return None
    return None if name == "utf-7" else name


def decode(body: bytes, content_type: str = "", *, html: bool = False) -> str:
    """`body` as text, the charset found as the module docstring says."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body.decode(name, errors="replace")
    match = _CHARSET_PARAM.search(content_type)
    declared = codec_for(match.group(1)) if match else None
    if declared is None and html:
        found = _META_CHARSET.search(body[:4096])
        if found:
            declared = codec_for((found.group(1) or found.group(2)).decode("ascii"))
            if declared is not None and declared.startswith("utf-16"):
                declared = "utf-8"  # an ASCII-readable page cannot be UTF-16 (WHATWG)
    if declared is not None and declared not in _LATIN1_DEFAULTS:
        return body.decode(declared, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if declared is not None:
        return body.decode(declared, errors="replace")
    return body.decode(_guess(body), errors="replace")


def _guess(body: bytes) -> str:
    """The codec of bytes that declare none and are not UTF-8."""
    if _reads_as_western(body[:_SAMPLE_BYTES]):
        return "cp1252"
    from charset_normalizer import from_bytes  # imported late: slow, and rarely needed

    best = from_bytes(body[:_SAMPLE_BYTES]).best()
    return (codec_for(best.encoding) if best is not None else None) or "cp1252"


def _reads_as_western(body: bytes) -> bool:
    """Whether `body` read as Windows-1252 looks like Western European text: every byte is
    defined there, at most half the letters are accented ones, no four accented letters in a
    row, and no symbol between two letters. Cyrillic, Greek, Arabic and Hebrew code pages
    give words of accented letters only; CJK ones give undefined bytes or symbols inside
    words; Windows-1250's ą, ł, ż come out as ¹, ³, ¿ inside words."""
    try:
        text = body.decode("cp1252")
    except UnicodeDecodeError:
        return False
    accented = len(_NON_ASCII_LETTER.findall(text))
    return (
        accented <= len(_ASCII_LETTER.findall(text))
        and not _LONG_NON_ASCII_RUN.search(text)
        and not _SYMBOL_IN_WORD.search(text)
    )


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _looks_html(body: bytes) -> bool:
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<!--"))


def page_from_bytes(url: str, content_type: str, body: bytes) -> Page:
    """A Page with the readable text of `body`; FetchError when there is none to give."""
    kind = media_type(content_type)
    generic = kind in GENERIC_TYPES
    if kind in PDF_TYPES or (generic and body.startswith(b"%PDF-")):
        return pdf_page(url, body)
    if kind in HTML_TYPES or (generic and _looks_html(body)):
        html = decode(body, content_type, html=True)
        readable = html_text(html, url)
        if not readable:
            raise FetchError("no readable text on the page (it may need JavaScript)")
        return Page(url=url, title=html_title(html) or url, text=readable,
                    content_type=kind or "text/html", published=published_date(html))
    if (
        kind.startswith("text/") or kind in TEXT_TYPES or kind.endswith(("+json", "+xml"))
        or (generic and b"\0" not in body[:1024])
    ):
        return Page(url=url, title=url, text=decode(body, content_type),
                    content_type=kind or "text/plain")
    raise FetchError(f"unsupported content type {kind or 'unknown'}")


def pdf_page(url: str, body: bytes) -> Page:
    """Text of a PDF, page by page (`[page N]` before each), through pypdf."""
    try:
        from pypdf import PdfReader
    except ImportError:
        raise FetchError(PDF_NEEDS_PYPDF) from None
    try:
        reader = PdfReader(io.BytesIO(body))
        if reader.is_encrypted:
            reader.decrypt("")
        texts = [(page.extract_text() or "").strip() for page in reader.pages]
        title = str(reader.metadata.title or "") if reader.metadata else ""
    except Exception as exc:  # hostile or broken input: pypdf raises many kinds of errors
        raise FetchError(f"the PDF could not be read ({type(exc).__name__})") from None
    text = "\n\n".join(f"[page {n}]\n{t}" for n, t in enumerate(texts, 1) if t)
    if not text:
        raise FetchError("no readable text in the PDF (it may be scanned pages)")
    return Page(url=url, title=" ".join(title.split()) or url, text=text,
                content_type="application/pdf")
