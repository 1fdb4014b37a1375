"""Render a Report as PDF: the standalone HTML report (rumination.reports.html) printed by
WeasyPrint (extra `pdf`), with print rules added: A4 pages numbered "page N of M", tables
and code that wrap instead of scrolling, and the hover-only evidence of a checked citation
left out. Citation numbers stay internal links to the source list and sources stay live
links (WeasyPrint writes both as PDF link annotations).

WeasyPrint draws with pango, so the fonts are the system's: CJK text needs a CJK font
installed (Debian: fonts-noto-cjk). Rendering loads nothing from outside: the report has no
external asset, and any URL WeasyPrint would fetch is refused.
"""

from __future__ import annotations

from typing import Any, NoReturn

from rumination.errors import UsageError
from rumination.models import Report
from rumination.reports.html import render_html

PRINT_CSS = """
@page {
  size: A4;
  margin: 18mm 16mm 20mm;
  @bottom-right { content: "page " counter(page) " of " counter(pages);
                  font: 9pt system-ui, sans-serif; color: #5c6370; }
  @bottom-left { content: string(question); font: 9pt system-ui, sans-serif; color: #5c6370; }
}
body { font-size: 11pt; }
.question { string-set: question content(); }
header, main, footer { max-width: none; padding-left: 0; padding-right: 0; }
header { padding-top: 0; }
body .meta, body .figures { display: block; }
body .meta div, body .figures div { display: inline-block; margin: 0 1.4em .25em 0;
                                    white-space: nowrap; }
body dt, body dd { display: inline; }
body dt::after { content: " "; }
.cite .evidence { display: none !important; }
table { display: table; }
pre { white-space: pre-wrap; }
h1, h2, h3, h4 { break-after: avoid; }
#sources li { break-inside: avoid; }
"""


def require_weasyprint() -> None:
    """Raise a one-line UsageError naming the extra when WeasyPrint is missing."""
    try:
        import weasyprint  # noqa: F401
    except ImportError:
        raise UsageError("--format pdf needs WeasyPrint: pip install 'rumination[pdf]'") from None
    except OSError as exc:  # installed, but pango (a system library) is missing
        raise UsageError(f"--format pdf: WeasyPrint cannot load its system libraries "
                         f"(pango): {exc}") from None


def _refuse_fetch(url: str, *args: Any, **kwargs: Any) -> NoReturn:
    raise ValueError(f"a PDF report loads nothing from outside (asked for {url[:80]})")


def render_pdf(report: Report) -> bytes:
    require_weasyprint()
    from weasyprint import CSS, HTML

    document = HTML(string=render_html(report), url_fetcher=_refuse_fetch)
    pdf: bytes = document.write_pdf(stylesheets=[CSS(string=PRINT_CSS)])
    return pdf
