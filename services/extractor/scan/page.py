"""One page scanned for playlist candidates: its markup, its scripts, and everything they hide
(packed, base64, percent-encoded, written as markup, split across concatenations), decoded
recursively within a depth and a budget. Pure and synchronous: the http extractor runs it in
a worker thread.

Candidates come out ranked (:class:`~services.extractor.scan.urls.Tier`), in document order
within a rank; each says where it was found (``via``: the decoders it came through, innermost
last, e.g. ``packed > packed > config``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from services.extractor.scan import b64, jslex, markup, scripts, urls
from services.extractor.scan.budget import Budget
from services.extractor.scan.escapes import encoded_urls, has_percent_markup, percent_decode
from services.extractor.scan.evaluate import location_names
from services.extractor.scan.urls import PLAYER_FIELDS, Tier

#: How many decoders deep a value is followed (base64 in packed in base64...).
MAX_DEPTH: Final = 8
#: Markup fragments (written by scripts, decoded from strings) parsed per page.
MAX_FRAGMENTS: Final = 64
#: Longest string value looked into (characters).
MAX_VALUE: Final = 1024 * 1024
#: Values looked into per page (each distinct value once).
MAX_VALUES: Final = 50_000
#: Iframes listed per page (the extractor follows only the first few).
MAX_FRAMES: Final = 64
#: Cookies a page's scripts may set.
MAX_COOKIES: Final = 32


@dataclass(frozen=True)
class Candidate:
    """A URL that may be a playlist, how likely (``tier``), and where it was found."""

    url: str
    tier: Tier
    via: str


@dataclass
class PageScan:
    """What a page holds: ranked candidates, iframes to follow, its title and referrer policy."""

    candidates: list[Candidate] = field(default_factory=list)
    iframes: list[str] = field(default_factory=list)
    title: str = ""
    referrer_policy: str = ""
    #: Cookies the page's scripts set (``document.cookie = "name=value; path=/"``).
    cookies: dict[str, str] = field(default_factory=dict)


def scan(html: str, url: str, budget: Budget) -> PageScan:
    """The candidates, iframes and title of the page ``html`` served at ``url``."""
    return _Scanner(url, budget).document(html)


class _Scanner:
    def __init__(self, url: str, budget: Budget) -> None:
        self.url = url
        self.base = url
        self.budget = budget
        self.env: dict[str, str] = location_names(url)
        self.found: dict[str, tuple[Tier, int, str]] = {}
        self.iframes: list[str] = []
        self.seen: set[str] = set()
        self.fragments = 0
        self.title = ""
        self.referrer = ""
        self.cookies: dict[str, str] = {}

    def document(self, html: str) -> PageScan:
        self._markup(html, 0, "")
        self._sweep(html, "text")  # last: what markup and scripts explain keeps their ``via``
        ranked = sorted(self.found.items(), key=lambda kv: (kv[1][0], kv[1][1]))
        return PageScan(candidates=[Candidate(u, tier, via) for u, (tier, _, via) in ranked],
                        iframes=self.iframes, title=" ".join(self.title.split()),
                        referrer_policy=self.referrer, cookies=self.cookies)

    def _add(self, value: str, via: str, *, player: bool = False, typed: bool = False) -> None:
        tier = urls.rank(value.strip(), player=player, typed=typed)
        if tier is None:
            return
        url = urls.resolve(self.base, value)
        if url is None:
            return
        known = self.found.get(url)
        if known is None:
            self.found[url] = (tier, len(self.found), via)
        elif tier < known[0]:
            self.found[url] = (tier, known[1], via)

    def _sweep(self, text: str, via: str) -> None:
        for n, url in enumerate(urls.sweep(text)):
            self._add(url, via)
            if n % 256 == 255:
                self.budget.check()

    def _markup(self, html: str, depth: int, path: str) -> None:
        for event in markup.events(html, self.budget):
            if isinstance(event, markup.Source):
                self._add(event.url, _via(path, event.what), player=event.player,
                          typed=event.typed)
            elif isinstance(event, markup.Frame):
                self._frame(event.url)
            elif isinstance(event, markup.Script):
                self._script(event.text, depth, path)
            elif isinstance(event, markup.Blob):
                self._value(event.value, depth, path, player=event.name in PLAYER_FIELDS)
            elif event.name == "title" and not self.title and depth == 0:
                self.title = event.value
            elif event.name == "base" and depth == 0:
                self.base = urls.resolve(self.url, event.value) or self.base
            elif event.name == "referrer" and depth == 0:
                self.referrer = event.value

    def _frame(self, src: str) -> None:
        for encoded in encoded_urls(src):  # embed.php?src=https%3A%2F%2F...m3u8
            self._add(encoded, "iframe query")
        url = urls.resolve(self.base, src)
        if (url is not None and url != self.url and url not in self.iframes
                and len(self.iframes) < MAX_FRAMES):
            self.iframes.append(url)

    def _script(self, text: str, depth: int, path: str) -> None:
        if not text.strip():
            return
        for item in scripts.walk(jslex.tokens(text, self.budget), self.env, self.budget):
            if item.kind == "packed":
                if depth < MAX_DEPTH:
                    packed = _via(path, "packed")
                    self._script(item.value, depth + 1, packed)
                    self._sweep(item.value, _via(packed, "text"))
            elif item.kind == "markup":
                self._fragment(item.value, depth + 1, _via(path, "markup"))
            elif item.kind == "frame":
                self._frame(item.value)
            elif item.kind == "cookie":
                name, sep, value = item.value.split(";", 1)[0].partition("=")
                if sep and name.strip() and len(self.cookies) < MAX_COOKIES:
                    self.cookies[name.strip()] = value.strip()
            elif item.kind == "code":
                if depth < MAX_DEPTH:
                    self._script(item.value, depth + 1, _via(path, "script"))
            else:
                self._value(item.value, depth, path, player=item.kind == "player",
                            typed=item.typed)

    def _value(self, value: str, depth: int, path: str, *, player: bool = False,
               typed: bool = False, hidden: bool = False) -> None:
        """A string the page holds: a URL, or something that may decode to more (``hidden``:
        it was decoded from base64 or percent-encoding, so it may be code: ``eval(atob(...))``)."""
        if len(value) < 3 or len(value) > MAX_VALUE:
            return
        if urls.url_shaped(value) and (player or typed or value.startswith("/")
                                       or urls.absolute(value)):
            # In scripts, a relative path ("live/x.m3u8") is usually a piece being assembled.
            self._add(value, _via(path, "config" if player or typed else "script"),
                      player=player, typed=typed)
        if value in self.seen or depth >= MAX_DEPTH or len(self.seen) >= MAX_VALUES:
            return
        self.seen.add(value)
        decoded = b64.decode(value)
        if decoded is not None:
            self.budget.charge(len(decoded))
            self._value(decoded, depth + 1, _via(path, "base64"), player=player, typed=typed,
                        hidden=True)
            return
        if "%" in value:
            for url in encoded_urls(value):
                self._add(url, _via(path, "escaped"), player=player, typed=typed)
            if has_percent_markup(value):
                text = percent_decode(value)
                self.budget.charge(len(text))
                self._value(text, depth + 1, _via(path, "escaped"), hidden=True)
                return
        stripped = value.lstrip()
        if scripts.MARKUP.search(value):
            self._fragment(value, depth + 1, _via(path, "markup"))
        elif stripped[:1] in ("{", "[") or "eval(" in value:
            self._script(value, depth + 1, _via(path, "json" if stripped[:1] in "{[" else "script"))
        elif hidden and not urls.url_shaped(value):
            self._script(value, depth + 1, _via(path, "script"))
            self._sweep(value, _via(path, "text"))
        elif not urls.url_shaped(value):
            self._sweep(value, _via(path, "text"))

    def _fragment(self, html: str, depth: int, path: str) -> None:
        if depth >= MAX_DEPTH or self.fragments >= MAX_FRAGMENTS:
            return
        self.fragments += 1
        self.budget.charge(len(html))
        if html.rfind("<") > html.rfind(">"):
            html += ">"  # a tag cut where the script's string ends
        self._markup(html, depth, path)
        self._sweep(html, _via(path, "text"))


def _via(path: str, what: str) -> str:
    return f"{path} > {what}" if path else what
