"""The public view is the security boundary: whatever a record's health detail says (extractor
errors quote page URLs, yt-dlp and Chromium messages included), no URL, host, query, header or
cookie value of the record passes it; the title loses them too. Issue 13."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from services.extractor.extractors.http import shown
from services.extractor.registry import Context
from services.extractor.resolve import safe_reason
from shared.logs import redact_text
from shared.streams import (
    PUBLIC_DETAILS,
    Health,
    StreamRecord,
    Variant,
    public_detail,
    public_view,
    record_secrets,
    scrub,
)

T0 = datetime(2026, 5, 24, 13, 0, tzinfo=UTC)
PAGE = "https://pages.example.test/f1/live?token=PAGE-TOKEN-123"


def record(*, detail: str = "live", health: Health = Health.OK, title: str = "Race",
           headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None,
           upstream: str = "https://cdn.example.test/hls/master.m3u8?sig=SIG-9f8e7d") -> StreamRecord:
    return StreamRecord(
        id="a", session="2026.monaco.race", source_id="a", title=title,
        upstream_url=upstream, headers=headers or {"Referer": PAGE},
        cookies=cookies or {"session": "COOKIE-VALUE-42"},
        variants=(Variant(uri="https://cdn.example.test/hls/720.m3u8?sig=VARIANT-SIG", height=720),),
        resolved_at=T0, health=health, health_detail=detail)


def view_of(rec: StreamRecord) -> tuple[str, str]:
    view = public_view(rec, playback_url="http://relay.test/s/x/master.m3u8")
    return view.health_detail, view.title


#: The error reasons extractors really write, and the phrase a viewer reads for each.
REAL_REASONS = [
    ("live", Health.OK, "live"),
    ("not live: the playlist has ended", Health.DEGRADED, "the stream has ended"),
    ("not advancing since 31 s", Health.DEGRADED, "the stream is not advancing"),
    ("slow: 2100 ms for the playlist", Health.DEGRADED, "the source is slow"),
    ("HTTP 503", Health.DEGRADED, "the source is failing"),
    (f"http: {PAGE}: HTTP 503; ytdlp: [generic] live?token=PAGE-TOKEN-123: Unable to download "
     "webpage: HTTP Error 503: Service Unavailable; browser: no result within 5 s",
     Health.DEAD, "the source is failing"),
    (f"http: {PAGE}: HTTP 403; browser: HTTP 403", Health.DEAD, "the source refused access"),
    ("HTTP 404", Health.DEAD, "the stream is gone from its source"),
    ("browser: page did not load: net::ERR_CONNECTION_REFUSED at " + PAGE, Health.DEAD,
     "the source is unreachable"),
    ("ConnectError: [Errno 111] Connection refused", Health.DEAD, "the source is unreachable"),
    ("ReadTimeout: timed out", Health.DEAD, "the source did not answer in time"),
    ("no complete answer within 10.0 s", Health.DEAD, "the source did not answer in time"),
    ("not an HLS playlist: the answer is an HTML page", Health.DEAD,
     "the source serves no playable playlist"),
    (f"http: no playlist in the page at {PAGE}", Health.DEAD, "no stream found on the source page"),
    ("refused by the egress policy: 10.0.0.7 is private", Health.DEAD,
     "the source's address is not allowed"),
    ("something nobody foresaw: " + PAGE, Health.DEAD, "the source stopped answering"),
    ("", Health.RESOLVING, ""),
]


@pytest.mark.parametrize(("detail", "health", "phrase"), REAL_REASONS)
def test_the_public_detail_is_a_fixed_phrase_chosen_by_what_the_detail_says(
        detail: str, health: Health, phrase: str) -> None:
    assert public_detail(health, detail) == phrase
    shown_detail, _ = view_of(record(detail=detail, health=health))
    assert shown_detail == phrase
    assert shown_detail in PUBLIC_DETAILS
    for secret in ("PAGE-TOKEN-123", "pages.example.test", "10.0.0.7", "http"):
        assert secret not in shown_detail


_TEXT = st.text(string.printable, max_size=40)
#: Secrets as they come: tokens, cookie values, whole URLs, with any printable character.
_SECRET = st.text(string.ascii_letters + string.digits + string.punctuation + " ",
                  min_size=4, max_size=40)
_HOST = st.from_regex(r"\A[a-z][a-z0-9-]{2,12}(\.[a-z]{2,6}){1,2}\Z")


def _fixed(secret: str) -> bool:
    """Whether ``secret`` is part of a fixed public phrase (it then says nothing of a record)."""
    return any(secret in phrase for phrase in PUBLIC_DETAILS)


@settings(max_examples=300, deadline=None)
@given(secret=_SECRET, where=st.sampled_from(["header", "cookie", "query", "page"]),
       before=_TEXT, after=_TEXT, health=st.sampled_from(list(Health)))
@example(secret="live", where="query", before="", after="", health=Health.OK)
def test_no_secret_embedded_in_a_detail_survives_the_public_view(
        secret: str, where: str, before: str, after: str, health: Health) -> None:
    """A secret of the record (or of the page, which the record does not even know) anywhere in
    the detail text: the viewer reads a fixed phrase, never the secret."""
    upstream = "https://cdn.example.test/hls/master.m3u8"
    rec = record(detail=before + secret + after, health=health,
                 headers={"X-Key": secret} if where == "header" else None,
                 cookies={"c": secret} if where == "cookie" else None,
                 upstream=f"{upstream}?token={quote(secret, safe='')}" if where == "query"
                 else upstream)
    detail, _ = view_of(rec)
    assert detail in PUBLIC_DETAILS
    assume(not _fixed(secret))
    assert secret not in detail


@settings(max_examples=300, deadline=None)
@given(secret=_SECRET, host=_HOST, where=st.sampled_from(["header", "cookie", "query", "host"]),
       before=_TEXT, after=_TEXT)
def test_no_secret_of_the_record_survives_in_the_title(
        secret: str, host: str, where: str, before: str, after: str) -> None:
    """The title comes from the source page: a header value, cookie value, query value or the
    upstream host in it is scrubbed, and so is anything URL-like."""
    value = host if where == "host" else secret
    rec = record(title=before + value + after,
                 headers={"X-Key": secret} if where == "header" else None,
                 cookies={"c": secret} if where == "cookie" else None,
                 upstream=f"https://{host}/hls/master.m3u8"
                 + (f"?token={quote(secret, safe='')}" if where == "query" else ""))
    assert value in record_secrets(rec)
    _, title = view_of(rec)
    assert value not in title


@given(secrets=st.lists(_SECRET, min_size=1, max_size=4), text=_TEXT)
def test_scrub_leaves_none_even_when_replacements_join_new_ones(secrets: list[str],
                                                                text: str) -> None:
    text = "".join(s + text for s in secrets) + "*" * 3
    out = scrub(text, secrets)
    assert not any(s in out for s in secrets)


def test_scrub_removes_anything_url_like_and_keeps_plain_words() -> None:
    text = ("Monaco GP live https://cdn.test/a?x=1 //cdn.test/b cdn.test:8080/live/x.m3u8 "
            "page?token=abc 192.168.1.20:8000 F1.com")
    assert scrub(text, ()) == "Monaco GP live *** *** *** *** *** F1.com"


def test_extractor_reasons_lose_the_page_query_and_the_sources_secrets() -> None:
    """Defence in depth: what the extractor stores, logs and dead-letters is already clean."""
    ctx = Context(client=None, policy=None, headers={"X-Api": "HEADER-SECRET"},  # type: ignore[arg-type]
                  cookies={"sid": "COOKIE-SECRET"})
    reason = (f"ytdlp: [generic] live?token=PAGE-TOKEN-123: HTTP Error 403 (sent HEADER-SECRET "
              f"and COOKIE-SECRET); browser: net::ERR_FAILED at {PAGE}; token PAGE-TOKEN-123")
    safe = safe_reason(reason, PAGE, ctx)
    for secret in ("PAGE-TOKEN-123", "HEADER-SECRET", "COOKIE-SECRET"):
        assert secret not in safe
    assert "HTTP Error 403" in safe
    assert "pages.example.test/f1/live" in safe
    assert shown("https://u:p@pages.example.test:8443/f1/live?token=x#frag") == (
        "https://pages.example.test:8443/f1/live")


def test_logs_redact_query_strings_quoted_without_their_url() -> None:
    assert redact_text("[generic] page?token=CANARY: Unable to download") == (
        "[generic] page?*** Unable to download")
    assert redact_text("cdn.test/live.m3u8?sig=abc&exp=1 failed") == "cdn.test/live.m3u8?*** failed"
    assert redact_text("what? nothing=here") == "what? nothing=here"
    assert redact_text("http://h/p?a=b") == "http://h/p?***"
