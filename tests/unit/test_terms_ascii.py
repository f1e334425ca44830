"""``keyspace.text.terms`` splits ASCII text with one regular expression (bulk loads project
millions of texts): it must find the words the per-character rule finds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from keyspace.text import MAX_TERM_BYTES, _is_word_char, fold, terms


def by_character(value: str) -> list[str]:
    """The per-character rule that non-ASCII text still goes through."""
    out, word = [], ""
    for ch in fold(value) + " ":
        if _is_word_char(ch):
            word += ch
        elif word:
            out.append(word[:MAX_TERM_BYTES])
            word = ""
    return out


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_text_splits_as_the_character_rule_does(value: str) -> None:
    assert terms(value) == by_character(value)


def test_the_words_of_a_generated_quest() -> None:
    assert terms("Tune_Yield  etch-Mask,qubit42 ") == ["tune_yield", "etch", "mask", "qubit42"]
    assert terms("x" * (MAX_TERM_BYTES + 5)) == ["x" * MAX_TERM_BYTES]
    assert terms("Émile café") == ["émile", "café"]
