"""Base64 literals, recognised by alphabet and by decoding to readable text."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.extractor.scan.b64 import decode
from tests.services.extractor.scan.strategies import urls


@given(urls(), st.booleans(), st.booleans())
def test_a_url_round_trips_padded_or_not_standard_or_url_safe(url: str, pad: bool,
                                                                  urlsafe: bool) -> None:
    """Any URL encoded (either alphabet, padded or not) decodes back to itself."""
    encoder = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    text = encoder(url.encode()).decode()
    assert decode(text if pad else text.rstrip("=")) == url


@given(st.text(min_size=12, max_size=300).filter(lambda s: s.strip() and s.isprintable()))
def test_readable_text_round_trips(text: str) -> None:
    """Any printable text survives encoding and decoding."""
    assert decode(base64.b64encode(text.encode()).decode()) == text


def test_json_and_markup_decode_and_line_breaks_are_ignored() -> None:
    """JSON and markup decode; base64 wrapped in lines (MIME style) too."""
    config = json.dumps({"sources": [{"file": "https:\\/\\/cdn.test\\/live.m3u8"}]})
    assert decode(base64.encodebytes(config.encode()).decode()) == config
    assert decode(base64.b64encode(b"<iframe src='/embed/9'></iframe>").decode()) == (
        "<iframe src='/embed/9'></iframe>")


@pytest.mark.parametrize("literal", [
    "vplayer", "aHR0cHM6Ly9h",  # too short
    "d41d8cd98f00b204e9800998ecf8427e",  # an md5: decodes to bytes, not text
    "the quick brown fox jumps", "https://cdn.test/live.m3u8", "0123456789012345678",
    base64.b64encode(bytes(range(256))).decode(),  # binary
    base64.b64encode(b"\x00\x01hello world, binary").decode(),  # control characters
    "aGVsbG8gd29ybGQhIQ=x",  # not the alphabet
])
def test_what_is_not_base64_of_text_is_none(literal: str) -> None:
    """Words, ids, hashes, URLs and binary are not taken for base64 of text."""
    assert decode(literal) is None


@given(st.text(max_size=400))
def test_any_string_gives_text_or_none(literal: str) -> None:
    """No input makes the decoder raise."""
    result = decode(literal)
    assert result is None or isinstance(result, str)
