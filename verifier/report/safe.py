"""Provider text made safe to show: characters that could hide text or reorder a page made visible."""

from __future__ import annotations

import re

from markupsafe import Markup

_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]")


def _mark(match: re.Match) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ ␁ … control pictures
    if code == 0x7F:
        return "\u2421"
    return f"\u27e8U+{code:04X}\u27e9"


def visible(value):
    """Control, zero-width, line-separator and bidirectional-override characters as visible marks (␀,
    ⟨U+202E⟩): provider text cannot hide itself, reorder the page or pose as something else. Markup
    (our own SVG) and non-strings pass unchanged; escaping stays the template's job."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return _INVISIBLE.sub(_mark, value)
