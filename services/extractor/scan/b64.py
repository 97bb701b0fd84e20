"""Base64 string literals (``atob("...")``, ``data-config="eyJ..."``, a bare
``"aHR0cHM6Ly9..."``), recognised by their alphabet and by what they decode to: readable text
(a URL, markup, JSON, or base64 again), never random bytes. Standard and URL-safe alphabets,
with or without padding, whitespace ignored.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

#: Shorter strings are words and ids far more often than base64 (a URL encodes to 24+).
MIN_LENGTH: Final = 16
#: Longest literal decoded (characters).
MAX_LENGTH: Final = 1024 * 1024
_ALPHABET: Final = re.compile(r"[A-Za-z0-9+/]++={0,2}")
_URLSAFE: Final = re.compile(r"[A-Za-z0-9_-]++={0,2}")
_WHITESPACE: Final = re.compile(r"\s++")
_UNPRINTABLE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


def decode(literal: str) -> str | None:
    """The text ``literal`` encodes, if it is base64 of readable UTF-8; else ``None``."""
    if len(literal) < MIN_LENGTH or len(literal) > MAX_LENGTH:
        return None
    text = literal.strip()
    if _ALPHABET.fullmatch(text):
        altchars = None
    elif _URLSAFE.fullmatch(text):
        altchars = b"-_"
    elif _WHITESPACE.search(text) and _ALPHABET.fullmatch(text := _WHITESPACE.sub("", text)):
        altchars = None  # base64 wrapped in lines
    else:
        return None
    body = text.rstrip("=")
    if len(body) % 4 == 1:
        return None  # no base64 has this length
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=altchars, validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not decoded.strip() or _UNPRINTABLE.search(decoded):
        return None
    return decoded
