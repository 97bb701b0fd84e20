"""JavaScript tokens: strings, templates, names and punctuation; comments and regex literals
set aside, so a quote inside them does not turn the rest of the script inside out."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from services.extractor.scan import jslex
from services.extractor.scan.budget import Budget


def toks(script: str) -> list[str]:
    return jslex.tokens(script, Budget(5))


def test_strings_names_and_punctuation() -> None:
    """Tokens come out as written; a string token reads back as its value."""
    assert toks("var a = 'x\\'y' + \"z\";") == ["var", "a", "=", "'x\\'y'", "+", '"z"', ";"]
    assert jslex.string_value("'x\\'y'") == "x'y"


def test_comments_and_regex_literals_are_left_out() -> None:
    """Quotes inside comments and regex literals do not open strings; division stays division."""
    script = ("// don't\nvar r = /['\"]/g, s = 'kept'; /* it's */ x = a / b / c;"
              " if (/\\//.test(u)) return /[/]'/i;")
    assert [t for t in toks(script) if t[0] in "'\""] == ["'kept'"]
    assert toks("x = a / b / c;") == ["x", "=", "a", "/", "b", "/", "c", ";"]


def test_template_literals_and_unterminated_strings() -> None:
    """Templates are one token; an unterminated string ends at its line."""
    assert toks("u = `${h}/live`;") == ["u", "=", "`${h}/live`", ";"]
    assert toks("s = 'open\nt = 1") == ["s", "=", "'open", "t", "=", "1"]
    assert jslex.string_value("'open") == "open"


@given(st.text(max_size=80))
def test_a_json_string_token_reads_back_as_itself(value: str) -> None:
    """Any string written as JSON lexes as one token and decodes to itself."""
    token = json.dumps(value)
    assert toks(f"x = {token};")[2] == token
    assert jslex.string_value(token) == value


@given(st.text(max_size=500))
def test_any_text_lexes(script: str) -> None:
    """No input makes the lexer raise."""
    assert isinstance(toks(script), list)
