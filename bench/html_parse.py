"""Parsing a realistic 200 KB live-sport page with each candidate HTML parser, side by side.

The page is what such sites serve: site chrome and navigation, 60 article cards, a 20 KB style
block, tag manager and ad scripts, a 110 KB minified inline bundle, schema.org JSON, a packed
player script, iframes for the player, chat and ads. Each parser does what the http extractor
needs: parse, then visit every element's attributes and every script's text and type.
Prints milliseconds per page (best of 7) and the ratio to the fastest.

    .venv/bin/python bench/html_parse.py

Then each parser on hostile markup (nesting, attributes, tables...) at two sizes, each in its
own process with a time limit: the scaling says which inputs make a parser quadratic.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import timeit
from collections.abc import Callable
from html.parser import HTMLParser

import lxml.html
from bs4 import BeautifulSoup, Tag
from selectolax.lexbor import LexborHTMLParser

from services.extractor.scan import markup
from services.extractor.scan.budget import Budget
from services.extractor.scan.page import scan

WORDS = ["race", "live", "stream", "sprint", "qualifying", "lap", "pit", "tyre", "driver", "team",
         "grid", "pole", "safety", "car", "overtake", "podium", "championship", "points",
         "circuit", "session", "practice", "weather"]
RNG = random.Random(14)  # noqa: S311 - filler text, the same every run


def _words(n: int) -> str:
    return " ".join(RNG.choice(WORDS) for _ in range(n))


def _minified(size: int) -> str:
    """Minified-looking JavaScript: short names, closures, string tables, regexes, URLs."""
    parts = []
    while sum(map(len, parts)) < size:
        a, b = RNG.choice("abcdefghnrtu"), RNG.choice("eiostxyz")
        parts.append(
            f"function {a}{b}{len(parts)}({a},{b}){{var c={a}.length>>>0,d=[];for(var i=0;i<c;i++)"
            f"{{if(/^[a-z]+$/i.test({a}[i]))d.push({a}[i].replace(/\\s+/g,'-'))}}"
            f"return {b}?d.join('{RNG.choice(WORDS)}'):\"https://cdn{len(parts) % 7}.example"
            f"/assets/{RNG.choice(WORDS)}.js?v={RNG.randint(1, 99999)}\"}}")
    return ";".join(parts)


def page() -> str:
    style = "".join(f".c{i}{{margin:{i % 9}px;color:#{i * 2654435761 % 0xFFFFFF:06x}}}"
                    for i in range(900))
    nav = "".join(f"<li><a href='/sport/{w}-{i}' class='nav-link'>{w.title()}</a></li>"
                  for i, w in enumerate(RNG.choices(WORDS, k=400)))
    cards = "".join(
        f"<article class='card c{i}' data-id='{i}'><a href='/news/{i}'><img src='/img/{i}.webp' "
        f"alt='{_words(4)}' loading=lazy width=320 height=180></a><h3>{_words(7)}</h3>"
        f"<p>{_words(40)}</p><span class=meta>{i} min ago</span></article>" for i in range(60))
    ld = json.dumps({"@context": "https://schema.org", "@type": "BroadcastEvent",
                     "name": "Formula 1 Sprint", "isLiveBroadcast": True,
                     "startDate": "2026-05-23T12:00:00Z", "location": {"@type": "Place",
                     "name": "Miami International Autodrome"}})
    packed = ("eval(function(p,a,c,k,e,d){e=function(c){return c.toString(36)};if(!''.replace(/^/,"
              "String)){while(c--){d[c.toString(a)]=k[c]||c.toString(a)}k=[function(e){return d[e]"
              "}];e=function(){return'\\\\w+'};c=1};while(c--){if(k[c]){p=p.replace(new RegExp("
              "'\\\\b'+e(c)+'\\\\b','g'),k[c])}}return p}('0 1=2 3({4:\"5://6.7/8/9.a\"});',11,11,"
              "'var|player|new|Clappr|source|https|cdn|example|live|index|m3u8'.split('|'),0,{}))")
    html = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>F1 Sprint live | Site"
        f"</title><style>{style}</style>"
        "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}"
        "gtag('js',new Date());gtag('config','G-XXXX');</script>"
        f"<script type='application/ld+json'>{ld}</script>"
        "<script async src='https://ads.example/invoke.js'></script></head><body>"
        f"<header><nav><ul>{nav}</ul></nav></header><main><div class=player>"
        "<iframe src='/embed/player?id=3' allowfullscreen></iframe></div>"
        f"<section class=news>{cards}</section></main>"
        "<aside><iframe src='/widgets/chat' loading=lazy></iframe>"
        "<iframe src='https://ads.example/banner?w=300' width=300 height=250></iframe></aside>"
        f"<script>{_minified(110_000)}</script><script type='text/javascript'>{packed}</script>"
        "<footer>" + _words(300) + "</footer></body></html>")
    return html


class _Stdlib(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attrs = 0
        self.script = False
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs += len(attrs)
        self.script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self.script = False

    def handle_data(self, data: str) -> None:
        if self.script:
            self.scripts.append(data)


def stdlib(html: str) -> int:
    parser = _Stdlib()
    parser.feed(html)
    parser.close()
    return parser.attrs + sum(map(len, parser.scripts))


def bs4_lxml(html: str) -> int:
    soup = BeautifulSoup(html, "lxml")
    n = 0
    for el in soup.find_all(True):
        assert isinstance(el, Tag)
        n += len(el.attrs)
        if el.name == "script":
            n += len(el.get_text())
    return n


def lxml_html(html: str) -> int:
    root = lxml.html.document_fromstring(html)
    n = 0
    for el in root.iter():
        n += len(el.attrib)
        if el.tag == "script":
            n += len(el.text or "")
    return n


def lxml_events(html: str) -> int:
    """What the http extractor does: lxml's event interface, no tree
    (``services.extractor.scan.markup``)."""
    return len(markup.events(html, Budget(600)))


def selectolax(html: str) -> int:
    tree = LexborHTMLParser(html)
    n = 0
    assert tree.root is not None
    for node in tree.root.traverse():
        if node.tag.startswith("-"):
            continue
        n += len(node.attributes)
        if node.tag == "script":
            n += len(node.text(deep=True))
    return n



PARSERS: dict[str, Callable[[str], int]] = {
    "html.parser (stdlib)": stdlib,
    "BeautifulSoup4 + lxml": bs4_lxml,
    "lxml.html": lxml_html,
    "lxml events (extractor)": lxml_events,
    "selectolax (lexbor)": selectolax,
}
#: Shapes of hostile markup, each a function of a size in bytes.
HOSTILE: dict[str, str] = {
    "nested <div>": '"<div>" * (n // 5)',
    "one tag, many attributes": '"<div " + " ".join(f"a{i}=1" for i in range(n // 8)) + ">"',
    "<table> + stray <div>": '"<table>" + "<div>x" * (n // 6)',
    "<select> + <option>": '"<select>" + "<option>" * (n // 8)',
    "nested <a>": '"<a>" * (n // 3)',
    "'<a ' repeated": '"<a " * (n // 3)',
}


def hostile_ms(parser: str, shape: str, size: int, timeout: float = 10.0) -> str:
    """Parsing one hostile document in a fresh process (a quadratic parser may never end)."""
    code = (f"import time, bench.html_parse as b; n = {size}; h = {HOSTILE[shape]}; "
            f"t = time.perf_counter(); b.PARSERS[{parser!r}](h); "
            "print((time.perf_counter() - t) * 1000)")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return f">{timeout * 1000:.0f}"
    return f"{float(done.stdout):.0f}"


def main() -> None:
    html = page()
    print(f"realistic page: {len(html.encode()) / 1024:.0f} KB")
    times = {}
    for name, parse in PARSERS.items():
        parse(html)
        times[name] = min(timeit.repeat(lambda p=parse: p(html), number=5, repeat=7)) / 5 * 1000
    fastest = min(times.values())
    for name, ms in sorted(times.items(), key=lambda kv: kv[1]):
        print(f"  {name:<24} {ms:8.2f} ms/page   {ms / fastest:5.1f}x")
    full = min(timeit.repeat(lambda: scan(html, "https://site.test/watch", Budget(30)),
                             number=1, repeat=5)) * 1000
    print(f"  the http extractor's whole scan (lxml + every decoder): {full:.0f} ms/page")
    sizes = (25_000, 100_000)
    print(f"\nhostile markup, ms to parse {' / '.join(f'{s // 1000} KB' for s in sizes)} "
          "(4x the input: 4x the time is linear, 16x quadratic)")
    for shape in HOSTILE:
        cells = [" / ".join(hostile_ms(name, shape, size) for size in sizes)
                 for name in ("lxml events (extractor)", "lxml.html", "selectolax (lexbor)",
                              "BeautifulSoup4 + lxml")]
        print(f"  {shape:<26} lxml events {cells[0]:>11}  lxml tree {cells[1]:>11}  "
              f"selectolax {cells[2]:>11}  bs4 {cells[3]:>11}")


if __name__ == "__main__":
    main()
