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
