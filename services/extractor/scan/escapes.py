"""Escapes pages wrap URLs and markup in: JavaScript string escapes (``\\/``, ``\\x2F``,
``\\u002F``, ``\\u{2F}``, octal), ``unescape``/``decodeURIComponent`` percent-encoding
(``%3C``, ``%u003C``), and URLs percent-encoded whole inside another URL's query.

Every function here is linear in its input: one regex pass, no backtracking.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

_JS_ESCAPE: Final = re.compile(
    r"\\(?:x([0-9A-Fa-f]{2})|u\{([0-9A-Fa-f]{1,6})\}|u([0-9A-Fa-f]{4})|([0-7]{1,3})|(\r\n|[\s\S]))")
_SIMPLE: Final = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v",
                  "\n": "", "\r": "", "\r\n": "", "\u2028": "", "\u2029": ""}
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_PERCENT_U: Final = re.compile(r"%u([0-9A-Fa-f]{4})")
#: An http(s) URL percent-encoded whole (``https%3A%2F%2F...``), up to where its encoding ends.
ENCODED_URL: Final = re.compile(r"(?:https?%3A)?%2F%2F[\w%.~+-]++", re.IGNORECASE)


def _js_char(m: re.Match[str]) -> str:
    hex2, braced, hex4, octal, other = m.groups()
    code = hex2 or braced or hex4
    if code:
        value = int(code, 16)
        return chr(value) if value <= 0x10FFFF else "\ufffd"
    if octal:
        return chr(int(octal, 8) & 0xFF) if octal != "0" else "\0"
    return _SIMPLE.get(other, other)


def _no_lone_surrogates(text: str) -> str:
    if not _SURROGATE.search(text):
        return text
    # \ud83d\ude00 pairs become one character; a lone half becomes U+FFFD.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def js_unescape(body: str) -> str:
    """The value of a JavaScript string literal's body (the text between its quotes)."""
    if "\\" not in body:
        return body
    return _no_lone_surrogates(_JS_ESCAPE.sub(_js_char, body))


def percent_decode(text: str) -> str:
    """What ``unescape``/``decodeURIComponent`` make of ``text`` (``%uXXXX`` included;
    invalid UTF-8 becomes U+FFFD instead of an error)."""
    if "%" not in text:
        return text
    text = _PERCENT_U.sub(lambda m: chr(int(m[1], 16)), text)
    return _no_lone_surrogates(unquote(text, errors="replace"))


def has_percent_markup(text: str) -> bool:
    """Whether ``text`` holds percent-encoded markup (``%3Ciframe``, ``%3C%69...``)."""
    lowered = text[:4096].lower()
    return "%3c" in lowered or "%u003c" in lowered


def encoded_urls(text: str) -> list[str]:
    """URLs percent-encoded whole inside ``text`` (``?u=https%3A%2F%2Fcdn%2Fx.m3u8``),
    decoded."""
    if "%" not in text:
        return []
    return [percent_decode(m[0]) for m in ENCODED_URL.finditer(text)]
