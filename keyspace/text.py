"""Unicode text rules shared by validation, unique claims, indexing and queries.

One definition of each, so the RediSearch path and the scan path cannot disagree:

- documents store text in NFC (canonically equal spellings are one value);
- :func:`fold` is the caseless form (NFKC + full case folding) used for unique
  claims, case-insensitive tags and full-text terms;
- :func:`terms` splits folded text into words: maximal runs of letters, marks,
  digits and connector punctuation (``_``); everything else separates words,
  whatever the script or the kind of space.

The search module tokenizes and lower-cases by its own (byte-based, ASCII-only)
rules, so it is never given raw text: it indexes the output of these functions
(see :mod:`keyspace.projection`).
"""

from __future__ import annotations

import re
import unicodedata

_WORD_CATEGORIES = frozenset(
    {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc"}
)

# Characters that render as nothing although their category says letter or symbol.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")

# Default-ignorable code points outside category Cf (Unicode's DerivedCoreProperties): they
# change no rendering, so two spellings differing only by them must fold alike.
_IGNORABLE_RANGES = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian variation selectors
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),
    (0xE0000, 0xE0FFF),  # tags and variation selectors supplement
)

# The index keeps words of at most this many UTF-8 bytes (RediSearch drops longer tokens):
# longer words are cut here, for documents and queries alike.
MAX_TERM_BYTES = 128

# Bidirectional embeddings, overrides and isolates: they reorder how text around them is
# displayed ("Trojan Source"), which no stored value needs.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_LINE_BREAKS = frozenset("\t\n\r")


def nfc(value: str) -> str:
    """The stored form of a text value: Unicode NFC."""
    return unicodedata.normalize("NFC", value)


def fold(value: str) -> str:
    """The caseless form of ``value``: NFKC, full case folding, NFKC again, without format
    characters (zero-width spaces and joiners), as Unicode's NFKC_Casefold does.

    ``Émile`` (precomposed or decomposed), ``ÉMILE`` and fullwidth ``EMILE`` fold alike;
    so do ``Straße`` and ``STRASSE``.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
    if folded.isascii():
        return folded
    return "".join(ch for ch in folded if not ignorable(ch))


def ignorable(ch: str) -> bool:
    """True for a default-ignorable character: format characters (zero-width spaces,
    joiners, byte-order mark), variation selectors, fillers."""
    if unicodedata.category(ch) == "Cf":
        return True
    code = ord(ch)
    return any(low <= code <= high for low, high in _IGNORABLE_RANGES)


def _bounded(word: str) -> str:
    encoded = word.encode()
    if len(encoded) <= MAX_TERM_BYTES:
        return word
    return encoded[:MAX_TERM_BYTES].decode(errors="ignore")


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch) in _WORD_CATEGORIES and ch not in _BLANK_LETTERS


# The ASCII word characters, by the same rule: a run of them is a word (bulk loads project
# millions of ASCII texts, and the per-character category lookup was most of their cost).
_ASCII_WORD = re.compile(
    "[" + "".join(re.escape(chr(c)) for c in range(128) if _is_word_char(chr(c))) + "]+"
)


def terms(value: str) -> list[str]:
    """The folded words of ``value``, in order (duplicates kept), each cut to at most
    :data:`MAX_TERM_BYTES` bytes of UTF-8."""
    folded = fold(value)
    if folded.isascii():
        return [_bounded(word) for word in _ASCII_WORD.findall(folded)]
    out: list[str] = []
    word: list[str] = []
    for ch in folded:
        if _is_word_char(ch):
            word.append(ch)
        elif word:
            out.append(_bounded("".join(word)))
            word = []
    if word:
        out.append(_bounded("".join(word)))
    return out


def _invisible(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category[0] in "ZC" or category in ("Mn", "Me") or ch in _BLANK_LETTERS or ignorable(ch)


def _padding(ch: str) -> bool:
    return ch.isspace() or ignorable(ch)


_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ASCII_CONTROL_NOT_BREAK = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _ascii_problem(value: str, *, line_breaks: bool, edges: bool) -> str | None:
    # The common case, without a per-character category lookup.
    found = (_ASCII_CONTROL_NOT_BREAK if line_breaks else _ASCII_CONTROL).search(value)
    if found:
        return f"must not contain control characters (U+{ord(found.group()):04X})"
    if value and value.isspace():
        return "must contain a visible character"
    if edges and value and (value[0].isspace() or value[-1].isspace()):
        return "must not start or end with whitespace"
    return None


def text_problem(value: str, *, line_breaks: bool = False, edges: bool = True) -> str | None:
    """Why ``value`` cannot be stored as text, or None when it can.

    Refused: control characters (C0, DEL, C1; tab and line breaks only when
    ``line_breaks``), bidirectional overrides and isolates, unpaired surrogates,
    noncharacters, a non-empty value with nothing visible, and (``edges``)
    leading or trailing whitespace.
    """
    if value.isascii():
        return _ascii_problem(value, line_breaks=line_breaks, edges=edges)
    for ch in value:
        category = unicodedata.category(ch)
        if category == "Cc" and not (line_breaks and ch in _LINE_BREAKS):
            return f"must not contain control characters (U+{ord(ch):04X})"
        if ch in _BIDI_CONTROLS:
            return f"must not contain bidirectional overrides (U+{ord(ch):04X})"
        if category == "Cs" or (ord(ch) & 0xFFFE) == 0xFFFE or 0xFDD0 <= ord(ch) <= 0xFDEF:
            return f"must not contain noncharacters (U+{ord(ch):04X})"
        if category in ("Zl", "Zp") and not line_breaks:
            return f"must not contain line or paragraph separators (U+{ord(ch):04X})"
    if value and all(_invisible(ch) for ch in value):
        return "must contain a visible character"
    if edges and value and (_padding(value[0]) or _padding(value[-1])):
        return "must not start or end with whitespace or invisible characters"
    return None
