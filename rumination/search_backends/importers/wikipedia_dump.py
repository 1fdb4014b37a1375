"""Wikipedia XML dumps (`*-pages-articles*.xml`, `.xml.bz2`), read as they stream.

Only articles are imported: pages of the main namespace (`<ns>0</ns>`) that are not
redirects; talk pages, templates, categories, files and the rest are passed over. An
article's id is its page id, its URL the site's (from `<siteinfo><base>`) with the title,
its text the wikitext made plain by `wikitext.plain_text` (needs rumination[wikidump]).
Elements are cleared once read, so memory stays flat however large the dump.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from rumination.errors import UsageError
from rumination.search_backends.importers.files import FileSource
from rumination.search_backends.importers.records import Record, Unusable

SUFFIXES = (".xml", ".xml.bz2")
ARTICLE_NAMESPACE = "0"
_TITLE_SAFE = "/:@!$&'()*+,;=-._~"


def is_dump(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


class WikipediaDumpSource(FileSource):
    """The articles of one dump file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, url_label=path.name)
        self._article_base = ""
        self._to_plain = _converter()

    def records(self) -> Iterator[Record | Unusable]:
        reader = self.open()
        try:
            yield from self._pages(ET.iterparse(reader.stream, events=("start", "end")))
        except ET.ParseError as exc:
            raise UsageError(f"{self.path}: not a readable Wikipedia XML dump ({exc})") from None
        finally:
            reader.close()

    def _pages(self, events: Iterator[tuple[str, ET.Element]]) -> Iterator[Record | Unusable]:
        root: ET.Element | None = None
        for event, element in events:
            if root is None:
                root = element
                if _local(root.tag) != "mediawiki":
                    raise UsageError(f"{self.path}: not a Wikipedia XML dump "
                                     f"(it starts with <{_local(root.tag)}>)")
            if event != "end":
                continue
            name = _local(element.tag)
            if name == "base" and element.text:
                self._article_base = element.text.strip().rsplit("/", 1)[0] + "/"
            elif name == "page":
                record = self._article(element)
                root.clear()  # the page and everything before it: memory stays flat
                if record is not None:
                    yield record

    def _article(self, page: ET.Element) -> Record | None:
        fields = {_local(child.tag): child for child in page}
        if _text(fields.get("ns")) != ARTICLE_NAMESPACE or "redirect" in fields:
            return None
        revision = fields.get("revision")
        wikitext = "" if revision is None else _text(
            next((c for c in revision if _local(c.tag) == "text"), None))
        if wikitext.lstrip()[:9].upper() == "#REDIRECT":
            return None
        title, page_id = _text(fields.get("title")), _text(fields.get("id"))
        if not page_id:
            return None
        url = (self._article_base + quote(title.replace(" ", "_"), safe=_TITLE_SAFE)
               if self._article_base and title else None)
        return Record(doc_id=page_id, title=title, text=wikitext, url=url,
                      to_plain=self._to_plain)


def _converter() -> Callable[[str], str]:
    try:
        from rumination.search_backends.importers.wikitext import plain_text
    except ImportError:
        raise UsageError("importing a Wikipedia dump needs mwparserfromhell: "
                         "pip install 'rumination[wikidump]'") from None
    return plain_text


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""
