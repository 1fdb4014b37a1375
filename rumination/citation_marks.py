"""The marks around sources and citations, one definition each.

Every source block the framework shows the model opens with `【id†title†url` (the templates
prompts/search_results*.j2, page*.j2 and writing_sources.j2 write it); the model cites
`【id†source】` (rumination.support.citations reads those); a finished report refers to
citation k as `[k]`. The header patterns are strings, for callers to anchor and extend.
"""

from __future__ import annotations

import re

# Groups: id, title, url. The block's `】` follows the url at once, except in the model card's
# search-result style, where it closes the snippet. Titles and urls never hold `【】†`
# (untrusted text is neutralised before it is shown), so a header is always the framework's.
SOURCE_HEADER = r"【(\d+)†([^†\n】]*)†([^\n】]*)"
# The opening of a page window: the closed header, the page's `Published:` line if it has
# one, the `Rendered:` line of a page read in a browser, then `Visible: a% - b%`.
# Groups: id, title, url, a, b.
PAGE_HEADER = (
    SOURCE_HEADER
    + r"】\n(?:Published: [^\n]*\n)?(?:Rendered: [^\n]*\n)?Visible: (\d+)% - (\d+)%"
)
# A report's reference to citation number k: `[k]`, but not a Markdown link `[k](…)`.
# Group: k.
REFERENCE = re.compile(r"\[(\d+)\](?!\()")
