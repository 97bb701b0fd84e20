"""What one script holds, read from its tokens in order: the strings it builds (literals,
concatenations, variables), which of them sit in a player's field (``file:``, ``sources:
[{file: ...}]``, ``player.load(...)``) or in an object typed as HLS (``type: "hls"``), markup
it writes, and packed blocks (unpacked here, scanned again by the caller).

Variables assigned string values are remembered in ``env`` (shared by the page's scripts, as
globals are); a variable later assigned something unknown is forgotten.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Final, Literal

from services.extractor.scan import jslex, packer
from services.extractor.scan.budget import Budget
from services.extractor.scan.evaluate import Evaluator, terminates
from services.extractor.scan.urls import PLAYER_FIELDS, TYPE_FIELDS, is_hls_type

#: Methods whose first argument is what a player plays (hls.js, video.js, Plyr, custom ones).
PLAYER_CALLS: Final = frozenset({"load", "loadsource", "src", "setsrc", "setsource",
                                 "attachsource", "loadvideo", "play", "setup", "file"})
#: Markup a string holds that can carry a stream: frames, media elements, links.
MARKUP: Final = re.compile(r"<\s*(?:iframe|frame|video|source|audio|embed|object|a|script)\b",
                           re.IGNORECASE)
_OPERATOR_BEFORE_EQUALS: Final = frozenset("=!<>-*/%&|^~?")
#: Tokens the walk stops at (with string and template literals); it passes all others by.
_INTERESTING: Final = frozenset({"{", "}", "[", "]", "=", ":", "(", ",", "return"})
_QUOTES: Final = "'\"`"
#: Names a string expression may start with besides the page's variables.
_ROOTS: Final = frozenset({"atob", "unescape", "decodeURIComponent", "decodeURI", "String",
                           "JSON", "window", "location", "document", "self"})

#: What a script navigates to (``location.href = url``, ``location.replace(url)``): followed
#: as a frame.
NAVIGATION: Final = frozenset({"location", "location.href", "window.location",
                               "window.location.href", "document.location",
                               "document.location.href", "top.location", "top.location.href",
                               "self.location", "self.location.href"})
_NAVIGATION_CALLS: Final = frozenset({f"{n}.{m}" for n in ("location", "window.location",
                                                            "document.location", "top.location")
                                      for m in ("replace", "assign")} | {"window.open"})

#: Calls whose string argument is code to run.
_CODE_CALLS: Final = frozenset({"eval", "window.eval", "Function", "setTimeout", "setInterval",
                                "window.setTimeout", "window.setInterval"})

Kind = Literal["string", "player", "markup", "packed", "frame", "code", "cookie"]


@dataclass
class Item:
    """One thing a script holds: a string value, markup, or the source a packed block runs."""

    value: str
    kind: Kind
    typed: bool = False


@dataclass
class _Frame:
    """An open object or array literal, and what was found in it."""

    player: bool = False
    typed: bool = False
    items: list[Item] = field(default_factory=list)


def walk(tokens: list[str], env: MutableMapping[str, str], budget: Budget) -> list[Item]:
    """The items of a script's tokens, in the order they appear."""
    return _Walker(tokens, env, budget).run()


class _Walker:
    def __init__(self, tokens: list[str], env: MutableMapping[str, str], budget: Budget) -> None:
        self.t = tokens
        self.env = env
        self.budget = budget
        self.ev = Evaluator(tokens, env, budget)
        self.placed: list[tuple[int, Item]] = []
        self.frames: list[_Frame] = [_Frame()]
        #: First names of the variables known (``cfg`` of ``cfg.file``): what an evaluable
        #: expression may start with.
        self.roots = set(_ROOTS) | {name.partition(".")[0] for name in env}

    def run(self) -> list[Item]:
        blocks: dict[int, int] = {}  # where each packed block starts: where it ends
        for first, last, block in packer.find_at(self.t, self.budget):
            try:
                self.placed.append((first, Item(packer.unpack(block, self.budget), "packed")))
            except ValueError:
                continue
            blocks[first] = last
        consumed = 0  # tokens up to here belong to a value already taken whole
        t = self.t
        starts = sorted(blocks.items())
        stops = [i for i, tok in enumerate(t) if tok[0] in _QUOTES or tok in _INTERESTING]
        for n, i in enumerate(stops):
            if n % 2048 == 0:
                self.budget.check()
            while starts and starts[0][0] <= i:
                consumed = max(consumed, starts.pop(0)[1])
            tok = t[i]
            if tok in ("{", "[", "}", "]"):
                self._bracket(i, tok)
            if i < consumed:
                continue
            start = _start(t, i)
            if start is not None:
                if start in ("key", "call", "item") and not self._evaluable(i + 1):
                    continue
                consumed = max(consumed, self._evaluate(i, start))
            elif jslex.is_string(tok) or jslex.is_template(tok):
                value = self.ev.literal(tok)
                if value:
                    self._place(i, value, "string")
        self.placed.sort(key=lambda pair: pair[0])
        return [item for _, item in self.placed]

    def _bracket(self, i: int, tok: str) -> None:
        """Open or close an object or array: a closed one typed as HLS types its items."""
        if tok in ("{", "["):
            self.frames.append(_Frame(player=_key(self.t, i - 1) in PLAYER_FIELDS))
        elif len(self.frames) > 1:
            closed = self.frames.pop()
            if closed.typed:
                for item in closed.items:
                    item.typed = True
            self.frames[-1].items.extend(closed.items)

    def _evaluable(self, i: int) -> bool:
        """Whether a string expression may start at token ``i`` (cheap: most cannot)."""
        if i >= len(self.t):
            return False
        first = self.t[i]
        return first[0] in _QUOTES or first in ("(", "[") or first in self.roots

    def _place(self, i: int, value: str, kind: Kind) -> None:
        item = Item(value, kind)
        self.placed.append((i, item))
        if kind != "markup":
            self.frames[-1].items.append(item)

    def _evaluate(self, i: int, start: str) -> int:
        """Evaluate the expression after token ``i``; returns the index up to which its
        tokens were taken whole (``i`` when nothing was)."""
        t = self.t
        target = _target(t, i - 2 if start == "append" else i - 1) if start in (
            "assign", "append") else ""
        literal = i + 1 < len(t) and t[i + 1][0] in _QUOTES
        value, j = self.ev.value(i + 1) if self._evaluable(i + 1) else (None, i)
        if value is None or not terminates(t, j):
            if target:
                self.env.pop(target, None)
            if literal:  # markup around unknown parts: '<iframe src="' + url + '">'
                markup, k = self.ev.expression(i + 1, lenient=True)
                if markup and MARKUP.search(markup) and terminates(t, k):
                    self._place(i, markup, "markup")
                    return k
            return i
        if isinstance(value, tuple):
            kind: Kind = "player" if start == "key" and _key(t, i) in PLAYER_FIELDS else "string"
            for element in value:
                self._place(i, element, kind)
            return j
        action = _action(target, _target(t, i - 1) if start == "call" else "")
        if action is not None:
            self._place(i, value, action)
            return j
        if target:
            if start == "append":
                if target not in self.env:
                    return j
                value = self.env[target] + value
            self.env[target] = value
            self.roots.add(target.partition(".")[0])
        if start == "key" and _key(t, i) in TYPE_FIELDS:
            self.frames[-1].typed = self.frames[-1].typed or is_hls_type(value)
            return j
        kind = self._kind(i, start, target)
        self._place(i, value, "markup" if MARKUP.search(value) else kind)
        return j

    def _kind(self, i: int, start: str, target: str) -> Kind:
        """Whether a value at a start of kind ``start`` is in a player's field."""
        t = self.t
        if start == "key":
            player = _key(t, i) in PLAYER_FIELDS or self.frames[-1].player
        elif start == "call":
            player = _target(t, i - 1).rpartition(".")[2].lower() in PLAYER_CALLS
        elif start == "assign":
            player = "." in target and target.rpartition(".")[2].lower() in PLAYER_FIELDS
        else:
            player = start == "item" and self.frames[-1].player
        return "player" if player else "string"


def _action(target: str, callee: str) -> Kind | None:
    """What assigning to ``target`` or calling ``callee`` with a string does, when it is more
    than a string: navigate (``frame``), run it (``code``), set a ``cookie``."""
    if target in NAVIGATION or callee in _NAVIGATION_CALLS:
        return "frame"
    if callee in _CODE_CALLS:
        return "code"
    if target == "document.cookie":  # a cookie the page sets for its player's requests
        return "cookie"
    return None


def _key(t: list[str], i: int) -> str:
    """The property name before the ``:`` at ``i`` (lower case), or ``""``."""
    if i < 1 or t[i] != ":":
        return ""
    key = t[i - 1]
    if jslex.is_string(key):
        return jslex.string_value(key).lower()
    return key.lower() if jslex.is_name(key) else ""


def _target(t: list[str], i: int) -> str:
    """The dotted name ending at token ``i`` (``a.b.c``), or ``""``."""
    names: list[str] = []
    while i >= 0 and jslex.is_name(t[i]):
        names.append(t[i])
        if i >= 2 and t[i - 1] == ".":
            i -= 2
        else:
            break
    return ".".join(reversed(names))


def _start(t: list[str], i: int) -> str | None:
    """What an expression starting after token ``i`` is: an ``assign``ment (or ``append``,
    ``+=``), a ``key``'s value, a ``call`` argument, an ``item`` of a list or a ``return``ed
    value; or ``None``."""
    tok = t[i]
    if tok == "=":
        before = t[i - 1] if i else ""
        after = t[i + 1] if i + 1 < len(t) else ""
        if after in ("=", ">") or (before and before in _OPERATOR_BEFORE_EQUALS):
            return None
        return "append" if before == "+" else "assign"
    if tok == ":":
        return "key"
    if tok == "(":
        return "call"
    if tok in (",", "[", "return"):
        return "item"
    return None
