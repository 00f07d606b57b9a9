"""Text from outside (QRS data, server answers) made safe for a log line or a terminal.

User names, user ids, tags and error bodies come from QRS and may hold anything: a newline that
starts a forged log line, ANSI or OSC escape sequences that recolour the terminal, rewrite its
title or hide what precedes them, bidirectional overrides that reorder what is shown, or ten
megabytes of one name. :func:`printable` is the one helper every log line and every console
table goes through; the JSON report keeps values exactly as QRS sent them.
"""

from __future__ import annotations

import re

#: What is escaped: C0 and C1 controls (newline, carriage return, tab and ESC included), DEL,
#: the Unicode line and paragraph separators, and the bidirectional controls. Other format
#: characters (such as the zero-width non-joiner of Persian names) are text and stay.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

#: What :func:`json.dumps` leaves raw of :data:`_UNSAFE`.
_JSON_RAW = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

#: Cells of a console table are cut to this many characters (the JSON report has them whole).
CELL_WIDTH = 60

ELLIPSIS = "..."


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, limit: int | None = None) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x1b``, ``\\u202e``), and cut
    to ``limit`` characters with ``...`` when it is longer.

    The result is one line that shows what the text holds and cannot act on a terminal or
    pass for a log line of its own.
    """
    value = text if isinstance(text, str) else str(text)
    if limit is not None and len(value) > limit:
        value = value[: limit + 1]  # enough to escape: never escape megabytes for a table
        cut = True
    else:
        cut = False
    if _UNSAFE.search(value) is not None:
        value = _UNSAFE.sub(_escape, value)
    if limit is not None and (cut or len(value) > limit):
        keep = max(limit - len(ELLIPSIS), 0)
        value = value[:keep] + ELLIPSIS
    return value


def printable_lines(text: object) -> str:
    """Like :func:`printable`, but the line breaks of a message the agent wrote itself (a list
    of configuration problems) are kept; every other control character is escaped."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


def json_safe(text: str) -> str:
    """JSON text (as :func:`json.dumps` wrote it with ``ensure_ascii=False``) with the characters
    that could act on a terminal written as ``\\uXXXX`` escapes.

    ``json.dumps`` escapes C0 controls itself but leaves DEL, the C1 controls (U+009B is a
    one-character CSI on some terminals), the line separators and the bidirectional controls
    raw. The escaped text decodes to exactly the same values, so a log shipper reading the
    JSON lines sees what QRS sent, and a terminal showing them sees nothing it would obey.
    """
    # Not C0: json.dumps escapes it inside strings, and outside them it is the layout of
    # indented output (newlines), which must stay.
    if _JSON_RAW.search(text) is None:
        return text
    return _JSON_RAW.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


__all__ = ["CELL_WIDTH", "json_safe", "printable", "printable_lines"]
