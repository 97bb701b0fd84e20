"""Log redaction: no credential or token reaches a log line."""

from __future__ import annotations

from shared.logs import redact, redact_text


def test_urls_lose_their_credentials_and_query_strings() -> None:
    """User info and query strings (where tokens live) are hidden; host and path stay."""
    text = redact_text("fetch https://user:pw@cdn.test/live/a.m3u8?token=abc&x=1 failed")
    assert text == "fetch https://***@cdn.test/live/a.m3u8?*** failed"
    assert redact_text("no url here") == "no url here"


def test_secret_fields_are_masked_wherever_they_appear() -> None:
    """Headers, cookies and tokens are masked, nested ones too."""
    event = redact(None, "info", {
        "event": "resolved http://cdn.test/m.m3u8?sig=1",
        "headers": {"Referer": "x"}, "cookies": {"a": "b"}, "token": "t",
        "detail": {"authorization": "Bearer x", "url": "http://h.test/p?k=v"},
    })
    assert event["event"] == "resolved http://cdn.test/m.m3u8?***"
    assert event["headers"] == event["cookies"] == event["token"] == "***"
    assert event["detail"] == {"authorization": "***", "url": "http://h.test/p?***"}


def test_access_log_request_lines_lose_query_strings_and_path_tokens() -> None:
    line = '127.0.0.1:5 - "GET /pages/plain?token=SECRET HTTP/1.1" 200'
    assert redact_text(line) == '127.0.0.1:5 - "GET /pages/plain?*** HTTP/1.1" 200'
    signed = '"GET /s/Zm9vYmFyYmF6cXV4cXV1eA/2026.monaco.race/a/master.m3u8 HTTP/1.1" 200'
    assert "Zm9vYmFy" not in redact_text(signed)
    assert "/2026.monaco.race/a/master.m3u8" in redact_text(signed)
