"""rumination.reading.page_shell: which fetched pages `browser = auto` renders."""

from __future__ import annotations

import pytest

from rumination.reading.page_shell import looks_like_script_shell

PROSE = "<p>" + "Kelp forests shelter fish and soak up carbon along cold coasts. " * 20 + "</p>"
SHORT_PROSE = "<p>" + "Kelp forests shelter fish. " * 12 + "</p>"  # 250-1000 visible characters


def page(body: str, head: str = "") -> str:
    return f"<html><head><title>t</title>{head}</head><body>{body}</body></html>"


@pytest.mark.parametrize(
    ("html", "shell"),
    [
        (page('<div id="root"></div><script src="/app.js"></script>'), True),
        (page("<app-root></app-root>", '<script src="/main.js"></script>'), True),
        (page(SHORT_PROSE + '<div id="__next"></div><script>1</script>'), True),
        (page(SHORT_PROSE + "<noscript>Please enable JavaScript.</noscript><script>1</script>"),
         True),
        (page(PROSE + '<div id="root"></div><script>1</script>'), False),  # text enough
        (page(PROSE, '<script src="/analytics.js"></script>'), False),
        (page("<p>A short page without scripts.</p>"), False),
        (page(SHORT_PROSE + "<script>1</script>"), False),
        # a script's own text is not visible text
        (page("<script>var text = '" + "x" * 5000 + "';</script>"), True),
        ("", False),
    ],
)
def test_script_shells_are_told_from_pages_with_their_own_text(html: str, shell: bool) -> None:
    assert looks_like_script_shell(html) is shell
