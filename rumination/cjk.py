"""Which characters are Chinese, Japanese or Korean: the one definition the package uses.

`CJK_LETTER` matches a character of the scripts themselves: ideographs (radicals, the unified
blocks with every extension, compatibility ideographs), kana, bopomofo and Hangul. It is
what "this text is CJK" means: the writing mode gives a question with one the Chinese prompt,
the HTML report marks it lang="zh", the lexical judge compares such words by character
pairs, and a word count counts each one as a word (the scripts put no spaces between words).
`CJK_CHARACTER` adds the scripts' punctuation and symbols and the fullwidth forms: what the
token estimator prices per character (rumination.llm.tokens).
"""

from __future__ import annotations

import re

_LETTERS = (
    "\u2e80-\u2fdf"  # CJK and Kangxi radicals
    "\u3005-\u3007"  # 々 〆 〇: iteration mark, closing mark, ideographic zero
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3100-\u318f"  # bopomofo, Hangul compatibility jamo
    "\u31a0-\u31bf"  # bopomofo extended
    "\u31f0-\u31ff"  # katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK unified ideographs extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\ua960-\ua97f"  # Hangul jamo extended-A
    "\uac00-\ud7ff"  # Hangul syllables, Hangul jamo extended-B
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0003ffff"  # extensions B to H, compatibility ideographs supplement
)
_MARKS = (
    "\u2fe0-\u2fff"  # ideographic description characters
    "\u3000-\u303f"  # CJK symbols and punctuation: 、。「」 and the ideographic space
    "\u3190-\u319f"  # kanbun
    "\u31c0-\u31ef"  # CJK strokes
    "\ufe30-\ufe4f"  # CJK compatibility forms (vertical punctuation)
    "\uff00-\uffef"  # halfwidth and fullwidth forms
)
CJK_LETTER = re.compile(f"[{_LETTERS}]")
CJK_CHARACTER = re.compile(f"[{_LETTERS}{_MARKS}]")


def has_cjk(text: str) -> bool:
    """Whether `text` has a Chinese, Japanese or Korean letter (punctuation alone is not)."""
    return CJK_LETTER.search(text) is not None
