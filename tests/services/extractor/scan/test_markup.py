"""HTML read with lxml's event interface in document order, in linear time whatever the
markup, without losing what follows deep nesting."""

from __future__ import annotations

import pytest

from services.extractor.scan import markup
from services.extractor.scan.budget import Budget


def events(html: str) -> list[markup.Event]:
    return markup.events(html, Budget(20))


def test_what_the_scanner_needs_in_document_order() -> None:
    """Meta, sources, frames, scripts and attribute blobs come out in document order."""
    html = ("<html><head><title>T</title><meta name=referrer content=origin>"
            "<meta property='og:video' content='/og.m3u8'><base href='https://b.test/'></head>"
            "<body><video data-setup='{\"fluid\":true}'><source src=/a type=application/x-mpegURL>"
            "</video><iframe data-src=/lazy></iframe><a href=/x.m3u8>x</a>"
            "<div data-config='eyJmaWxlIjoiL3gifQ==' class=c onclick='go(\"/y\")'></div>"
            "<script>var a=1</script><script type=application/ld+json>{}</script>"
            "<script type=text/template><iframe src=/t></iframe></script>"
            "<script type=text/x-other>ignored</script></body></html>")
    assert events(html) == [
        markup.Meta("title", "T"), markup.Meta("referrer", "origin"),
        markup.Source("/og.m3u8", "og:video", player=True), markup.Meta("base", "https://b.test/"),
        markup.Blob('{"fluid":true}', "setup"),
        markup.Source("/a", "source tag", player=True, typed=True),
        markup.Frame("/lazy"), markup.Source("/x.m3u8", "link"),
        markup.Blob("eyJmaWxlIjoiL3gifQ==", "config"), markup.Script('go("/y")'),
        markup.Script("var a=1"), markup.Script("{}"),
        markup.Blob("<iframe src=/t></iframe>", "template")]


@pytest.mark.parametrize("html", ["", "   ", "<!--", "\x00", "<", "<html"])
def test_empty_or_broken_documents(html: str) -> None:
    """Empty, cut or garbage documents give events, never an error."""
    assert isinstance(events(html), list)


def test_a_tag_with_tens_of_thousands_of_attributes_is_read() -> None:
    """lxml's tree builder is quadratic here (hours for 2 MB); its event interface is not."""
    crowded = "<div " + " ".join(f"a{n}='>'" for n in range(50_000)) + "></div>"
    assert events(crowded + "<iframe src=/after>")[-1] == markup.Frame("/after")


def test_content_after_deep_nesting_is_still_read() -> None:
    """300 unclosed <div><p> (broken templates do this), or 50,000 nested <div>: a tree
    stops at 256 (or 2,048) levels and drops the rest; the event interface does not."""
    html = "<body>" + "<div><p>x" * 300 + "<iframe src='/after'></iframe>"
    assert markup.Frame("/after") in events(html)
    assert events("<div>" * 50_000 + "<iframe src=/deep>")[-1] == markup.Frame("/deep")


def test_a_script_cut_off_by_the_end_of_the_page_is_read() -> None:
    """A script the page never closes is still read."""
    assert events("<title>T</title><script>var a = '/x.m3u8'") == [
        markup.Meta("title", "T"), markup.Script("var a = '/x.m3u8'")]
