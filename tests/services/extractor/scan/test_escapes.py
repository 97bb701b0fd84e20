"""JavaScript and percent escapes pages wrap URLs and markup in."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.extractor.scan.escapes import (
    encoded_urls,
    has_percent_markup,
    js_unescape,
    percent_decode,
)
from tests.services.extractor.scan.strategies import urls


@pytest.mark.parametrize(("body", "value"), [
    (r"https:\/\/cdn.test\/x.m3u8", "https://cdn.test/x.m3u8"),
    (r"https:\x2F\x2Fcdn.test\x2fx.m3u8", "https://cdn.test/x.m3u8"),
    (r"https:\u002F\u002Fcdn.test\u002Fx.m3u8", "https://cdn.test/x.m3u8"),
    (r"\u{2F}\u{1F600}", "/\U0001F600"),
    (r"\ud83d\ude00", "\U0001F600"),
    (r"it\'s \"q\" \\ \n\t", "it's \"q\" \\ \n\t"),
    (r"\101\0", "A\0"),
    ("a\\\nb", "ab"),
    (r"\q", "q"),
    ("no escapes", "no escapes"),
])
def test_javascript_escapes(body: str, value: str) -> None:
    """Every JavaScript escape form decodes as a browser decodes it."""
    assert js_unescape(body) == value


def _escape(text: str, style: int) -> str:
    if style == 0:
        return "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\u{{{ord(c):x}}}"
                       for c in text)
    if style == 1:
        return "".join(f"\\x{ord(c):02X}" if ord(c) < 256 else c for c in text)
    return text.replace("\\", "\\\\").replace("/", "\\/")


@given(st.text(max_size=100).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
       st.integers(0, 2))
def test_escaped_text_round_trips(text: str, style: int) -> None:
    """Text escaped as \\uXXXX, \\xXX or with escaped slashes decodes back to itself."""
    assert js_unescape(_escape(text, style)) == text


@given(urls())
def test_a_percent_encoded_url_inside_a_query_is_found(url: str) -> None:
    """A URL percent-encoded inside another URL's query is found, decoded."""
    assert encoded_urls(f"https://player.test/embed?src={quote(url, safe='')}&w=640") == [url]


def test_unescape_and_decode_uri_component_markup() -> None:
    """unescape and decodeURIComponent markup decode; invalid escapes are kept."""
    markup = "<iframe src=\"/embed/1\"></iframe>"
    escaped = "".join(f"%{ord(c):02X}" for c in markup)
    assert has_percent_markup(escaped)
    assert percent_decode(escaped) == markup
    assert percent_decode("%u003Ciframe%3E") == "<iframe>"
    assert percent_decode("%E2%82%AC %ZZ %") == "€ %ZZ %"
    assert not has_percent_markup("100%25 free")
