"""HTML, parsed with lxml (libxml2's HTML5 tokenizer, in C) through its event interface, read
in document order as what the page scanner needs: media sources and links, frames, scripts,
attribute values that may hide something (``data-*``, event handlers), the title, ``<base>``
and the referrer policy. No tree is built.

lxml over BeautifulSoup4 and selectolax, as ``bench/html_parse.py`` measures: on a 200 KB page
this is 7x faster than BeautifulSoup4 (which builds its own tree over the same lxml) and 2.2x
slower than selectolax; and through this event interface it stays linear on every hostile
shape measured, where selectolax's lexbor goes quadratic on nested elements, tables and
``<select>`` (20,000 nested ``<div>`` take seconds) and lxml's own tree builder on a tag with
thousands of attributes, and stops at 256 (or 2,048) levels of nesting, silently dropping the
rest of the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from lxml import etree

from services.extractor.scan.budget import Budget
from services.extractor.scan.urls import is_hls_type

_SCRIPT_TYPES: Final = ("", "text/javascript", "application/javascript", "module",
                        "text/babel", "application/ecmascript", "text/ecmascript")
_JSON_TYPES: Final = ("application/json", "application/ld+json", "importmap")
_MEDIA: Final = frozenset({"video", "audio", "source"})
_FRAMES: Final = frozenset({"iframe", "frame"})
_FRAME_SOURCES: Final = ("src", "data-src", "data-lazy-src", "data-litespeed-src")
_OG_VIDEO: Final = frozenset({"og:video", "og:video:url", "og:video:secure_url",
                              "twitter:player:stream"})
#: Elements whose text the scanner reads.
_WITH_TEXT: Final = frozenset({"script", "title"})
_PLAIN: Final = frozenset({"class", "id", "style", "width", "height", "title", "alt", "lang",
                           "dir", "role", "rel", "name", "charset", "content", "loading",
                           "target", "type", "media", "sizes", "srcset", "align", "border",
                           "frameborder", "scrolling", "allow", "allowfullscreen", "tabindex",
                           "poster", "controls", "muted", "autoplay", "playsinline", "preload",
                           "crossorigin", "referrerpolicy", "integrity", "async", "defer",
                           "href", "src", "action", "method", "property", "itemprop"})


@dataclass(frozen=True)
class Source:
    """A URL in markup: ``player`` (a media element's source), ``typed`` (said to be HLS)."""

    url: str
    what: str
    player: bool = False
    typed: bool = False


@dataclass(frozen=True)
class Frame:
    """An iframe's (or frame's) source."""

    url: str


@dataclass(frozen=True)
class Script:
    """An inline script (or a JSON block: JSON is a script too, here)."""

    text: str


@dataclass(frozen=True)
class Blob:
    """An attribute value that may hide something (base64, JSON, a URL, percent-encoding)."""

    value: str
    name: str


@dataclass(frozen=True)
class Meta:
    """The title, ``<base href>`` or referrer policy."""

    name: str
    value: str


Event = Source | Frame | Script | Blob | Meta


if TYPE_CHECKING:  # the protocol exists only in the type stubs
    _Target = etree.ParserTarget[list[Event]]
else:
    _Target = object


class _Collector(_Target):
    """lxml's parser target: turns start tags, text and end tags into events."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.events: list[Event] = []
        self.elements = 0
        self.open: tuple[str, dict[str, str]] | None = None  # a script or title being read
        self.text: list[str] = []

    def start(self, tag: str, attrib: dict[str, str], /) -> None:
        self.elements += 1
        if self.elements % 1024 == 0:
            self.budget.check()
        if not attrib and tag not in _WITH_TEXT:
            return  # most elements: nothing to read (and 400,000 nested <div> stay quick)
        tag = tag.lower()
        attrs = {k.lower(): v for k, v in attrib.items()}
        if tag in _WITH_TEXT:
            self.open, self.text = (tag, attrs), []
        else:
            self.events.extend(_element(tag, attrs, ""))

    def data(self, data: str, /) -> None:
        if self.open is not None:
            self.text.append(data)

    def end(self, tag: str, /) -> None:
        if self.open is not None and tag.lower() == self.open[0]:
            self.events.extend(_element(*self.open, "".join(self.text)))
            self.open = None

    def comment(self, text: str, /) -> None:
        """Comments are left to the text sweep."""

    def close(self) -> list[Event]:
        if self.open is not None:  # a script cut off by the end of the document
            self.end(self.open[0])
        return self.events


def events(html: str, budget: Budget) -> list[Event]:
    """What the scanner needs from ``html`` (a page or a fragment), in document order."""
    collector = _Collector(budget)
    parser = etree.HTMLParser(target=collector, huge_tree=True, no_network=True,
                              remove_comments=True, remove_pis=True)
    try:
        parser.feed(html)
        parser.close()
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        pass  # what was read so far stands
    budget.check()
    return collector.close() if collector.open is not None else collector.events


def _element(tag: str, attrs: dict[str, str], text: str) -> Iterator[Event]:
    if tag == "script":
        yield from _script(attrs, text)
    elif tag in _MEDIA:
        src = attrs.pop("src", "") or attrs.pop("data-src", "")
        if src:
            yield Source(src, f"{tag} tag", player=True,
                         typed=is_hls_type(attrs.get("type", "")))
    elif tag in _FRAMES:
        sources = [attrs.pop(name, "").strip() for name in _FRAME_SOURCES]
        if any(sources):
            yield Frame(next(s for s in sources if s))
    elif tag == "a" and attrs.get("href"):
        yield Source(attrs["href"], "link")
    elif tag == "meta":
        yield from _meta(attrs)
    elif tag == "title":
        yield Meta("title", text)
    elif tag == "base" and attrs.get("href"):
        yield Meta("base", attrs["href"])
    yield from _attributes(attrs)


def _script(attrs: dict[str, str], text: str) -> Iterator[Event]:
    kind = attrs.get("type", "").strip().lower()
    if kind in _SCRIPT_TYPES or kind in _JSON_TYPES:
        yield Script(text)
    elif "<" in text:
        yield Blob(text, "template")  # text/template, text/html: markup for later


def _attributes(attrs: dict[str, str]) -> Iterator[Event]:
    """Event handlers are scripts; other attributes that are not plain markup may hide
    something (``data-config``, ``data-src``, ``flashvars``...)."""
    for name, value in attrs.items():
        if name.startswith("on") and len(name) > 2:
            yield Script(value)
        elif name not in _PLAIN and len(value) > 2:
            yield Blob(value, name.removeprefix("data-"))


def _meta(attrs: dict[str, str]) -> Iterator[Event]:
    key = (attrs.get("property") or attrs.get("name") or attrs.get("itemprop") or "").lower()
    content = attrs.get("content", "")
    if attrs.get("http-equiv", "").lower() == "refresh":
        # <meta http-equiv=refresh content="0; url=/embed/7">: the page moves on; follow it
        # as a frame (the same Referer and cookies a browser would send).
        _, sep, target = content.partition("=")
        if sep and content.split(";", 1)[-1].strip().lower().startswith("url"):
            yield Frame(target.strip().strip("'\""))
    elif key in _OG_VIDEO and content:
        yield Source(content, "og:video", player=True)
    elif key == "referrer":
        yield Meta("referrer", content.strip().lower())
    elif key in ("contenturl", "embedurl") and content:
        yield Blob(content, "url")
