"""String expressions of a script, evaluated without running it: concatenations of string
literals, template literals and variables assigned earlier in the page
(``"https://" + host + "/live/" + id + ".m3u8"``, ``'<ifr' + 'ame src="'...``), ``location``
parts, and the few functions pages hide strings behind (``atob``, ``unescape``,
``decodeURIComponent``, ``String.fromCharCode``, ``JSON.parse``, ``.split().reverse().join()``).

Anything else (arithmetic, calls of the page's own functions, conditions) makes the value
unknown. In *lenient* mode an unknown part counts as the empty string: that is how markup a
script writes (``document.write('<iframe src="...?w=' + innerWidth + '">')``) is still read.

Each start position is evaluated once (memoised), nesting is capped and values are capped in
length, so the work stays linear in the number of tokens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Final
from urllib.parse import urlsplit

from services.extractor.scan import b64, jslex
from services.extractor.scan.budget import Budget
from services.extractor.scan.escapes import percent_decode

#: Longest value built (characters); a longer one is unknown.
MAX_VALUE: Final = 256 * 1024
#: Deepest nesting of parentheses, arrays and calls followed.
MAX_NESTING: Final = 24
#: Longest argument list skipped over (tokens) when a call is unknown in lenient mode.
MAX_SKIP: Final = 256
#: Tokens that end an expression (what may follow a complete value).
TERMINATORS: Final = frozenset({",", ";", ")", "}", "]", ":"})
_NOT_NAMES: Final = frozenset({"new", "typeof", "void", "function", "this", "delete", "in",
                               "instanceof", "await", "yield", "null", "undefined", "true",
                               "false", "return", "var", "let", "const"})
_METHODS: Final = frozenset({"split", "reverse", "join", "concat", "replace", "toString",
                             "trim", "toLowerCase", "toUpperCase"})
_PLACEHOLDER: Final = re.compile(r"\$\{\s*([A-Za-z_$][\w$.]*)\s*\}")

Value = str | tuple[str, ...]
Result = tuple[Value | None, int]


def location_names(url: str) -> dict[str, str]:
    """What ``location.*`` (and ``window.location.*``, ``document.location.*``) hold on the
    page at ``url``."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    fields = {"href": url, "protocol": f"{parts.scheme}:", "host": parts.netloc,
              "hostname": parts.hostname or "", "port": str(parts.port or ""),
              "origin": origin, "pathname": parts.path or "/",
              "search": f"?{parts.query}" if parts.query else ""}
    names = {f"{prefix}.{k}": v for prefix in ("location", "window.location",
                                              "document.location", "self.location")
             for k, v in fields.items()}
    names["document.domain"] = parts.hostname or ""
    names["document.URL"] = url
    return names


def terminates(tokens: list[str], j: int) -> bool:
    """Whether an expression ending before token ``j`` is complete there."""
    return j >= len(tokens) or tokens[j] in TERMINATORS or (
        jslex.is_name(tokens[j]) and tokens[j] not in ("instanceof", "in"))


class Evaluator:
    """Evaluates string expressions over one script's tokens, with the page's variables."""

    def __init__(self, tokens: list[str], env: MutableMapping[str, str], budget: Budget) -> None:
        self.t = tokens
        self.env = env
        self.budget = budget
        self._memo: dict[tuple[int, bool], Result] = {}

    def expression(self, i: int, *, lenient: bool = False) -> tuple[str | None, int]:
        """The string value of the expression starting at token ``i`` and the index after
        it; ``(None, i)`` when it is not a string expression this module can evaluate."""
        value, j = self._expr(i, lenient, 0)
        return (_text(value) if value is not None else None), j

    def value(self, i: int) -> Result:
        """Like :meth:`expression`, but an array of strings stays a tuple."""
        return self._expr(i, False, 0)

    def literal(self, token: str, *, lenient: bool = False) -> str | None:
        """The value of one string or template literal token on its own."""
        if jslex.is_template(token):
            return self._template(jslex.template_body(token), lenient)
        return jslex.string_value(token)

    def _expr(self, i: int, lenient: bool, depth: int) -> Result:
        key = (i, lenient)
        if key not in self._memo:
            self._memo[key] = self._chain(i, lenient, depth)
        return self._memo[key]

    def _chain(self, i: int, lenient: bool, depth: int) -> Result:
        value, j = self._term(i, lenient, depth)
        if value is None:
            return None, i
        if not self._plus(j):
            return value, j
        parts, size = [_text(value)], 0
        while self._plus(j):
            more, k = self._term(j + 1, lenient, depth)
            if more is None:
                return None, i
            text = _text(more)
            size += len(text)
            if size > MAX_VALUE:
                return None, i
            parts.append(text)
            j = k
            if len(parts) % 1024 == 0:
                self.budget.check()
        return "".join(parts), j

    def _plus(self, j: int) -> bool:
        t = self.t
        return j + 1 < len(t) and t[j] == "+" and t[j + 1] not in ("=", "+")

    def _term(self, i: int, lenient: bool, depth: int) -> Result:
        t = self.t
        if depth > MAX_NESTING or i >= len(t):
            return None, i
        value, j = self._primary(i, lenient, depth)
        while value is not None and j + 2 < len(t) and t[j] == "." and t[j + 2] == "(":
            value, j = self._method(value, t[j + 1], j + 2, lenient, depth + 1)
        return (value, j) if value is not None else (None, i)

    def _primary(self, i: int, lenient: bool, depth: int) -> Result:
        t = self.t
        tok = t[i]
        if jslex.is_string(tok) or jslex.is_template(tok):
            return self.literal(tok, lenient=lenient), i + 1
        if tok[0].isdigit():
            return (tok if tok.isdigit() else None), i + 1
        if tok == "(":
            value, j = self._expr(i + 1, lenient, depth + 1)
            if value is None or j >= len(t) or t[j] != ")":
                return None, i
            return value, j + 1
        if tok == "[":
            return self._array(i + 1, lenient, depth + 1)
        if not jslex.is_name(tok) or tok in _NOT_NAMES:
            return None, i
        name, j = self._dotted(i)
        if j < len(t) and t[j] == "(":
            return self._call(name, j, lenient, depth + 1)
        value = self._lookup(name)
        return ("" if value is None and lenient else value), j

    def _dotted(self, i: int) -> tuple[str, int]:
        """``a.b.c`` from token ``i``: the name and the index after it (a known method call
        such as ``.split(`` is left for the caller)."""
        t = self.t
        names, j = [t[i]], i + 1
        while (j + 1 < len(t) and t[j] == "." and jslex.is_name(t[j + 1])
               and not (t[j + 1] in _METHODS and t[j + 2:j + 3] == ["("])):
            names.append(t[j + 1])
            j += 2
        return ".".join(names), j

    def _lookup(self, name: str) -> str | None:
        env: Mapping[str, str] = self.env
        if name in env:
            return env[name]
        bare = name.removeprefix("window.")
        return env.get(bare)

    def _template(self, body: str, lenient: bool) -> str | None:
        if "${" not in body:
            return jslex.js_unescape(body)
        unknown = False

        def fill(m: re.Match[str]) -> str:
            nonlocal unknown
            value = self._lookup(m[1])
            if value is None:
                unknown = True
                return ""
            return value

        filled = _PLACEHOLDER.sub(fill, body)
        if (unknown and not lenient) or "${" in filled:
            return None
        return jslex.js_unescape(filled)

    def _arguments(self, i: int, lenient: bool, depth: int) -> tuple[list[Value] | None, int]:
        """Arguments from just after ``(`` to its ``)``: the values and the index after."""
        t = self.t
        args: list[Value] = []
        j = i
        if j < len(t) and t[j] == ")":
            return args, j + 1
        while j < len(t):
            value, j = self._expr(j, lenient, depth)
            if value is None or j >= len(t):
                return None, i
            args.append(value)
            if t[j] == ")":
                return args, j + 1
            if t[j] != ",":
                return None, i
            j += 1
        return None, i

    def _array(self, i: int, lenient: bool, depth: int) -> Result:
        t = self.t
        items: list[str] = []
        j = i
        while j < len(t) and t[j] != "]":
            value, j = self._expr(j, lenient, depth)
            if value is None or j >= len(t) or t[j] not in (",", "]"):
                return None, i
            items.append(_text(value))
            if t[j] == ",":
                j += 1
        if j >= len(t):
            return None, i
        return tuple(items), j + 1

    def _skip_call(self, i: int) -> int | None:
        """The index after the ``)`` matching the ``(`` at ``i`` (within :data:`MAX_SKIP`)."""
        depth = 0
        for j in range(i, min(len(self.t), i + MAX_SKIP)):
            if self.t[j] in ("(", "[", "{"):
                depth += 1
            elif self.t[j] in (")", "]", "}"):
                depth -= 1
                if depth == 0:
                    return j + 1
        return None

    def _call(self, name: str, i: int, lenient: bool, depth: int) -> Result:
        args, j = self._arguments(i + 1, lenient, depth)
        value = _function(name, args) if args is not None else None
        if value is None and lenient:
            end = self._skip_call(i)
            return ("", end) if end is not None else (None, i)
        if value is not None:
            self.budget.charge(len(value))
        return value, j

    def _method(self, value: Value, name: str, i: int, lenient: bool, depth: int) -> Result:
        args, j = self._arguments(i + 1, lenient, depth)
        if args is None or name not in _METHODS:
            return None, i
        result = _apply(value, name, args)
        return result, j


def _text(value: Value) -> str:
    return ",".join(value) if isinstance(value, tuple) else value


def _function(name: str, args: list[Value]) -> str | None:
    short = name.removeprefix("window.")
    if short == "String.fromCharCode":
        codes = [a for a in args if isinstance(a, str) and a.isdigit() and int(a) < 0x110000]
        return "".join(chr(int(c)) for c in codes) if len(codes) == len(args) else None
    if len(args) != 1 or not isinstance(args[0], str):
        return None
    arg = args[0]
    if short == "atob":
        return b64.decode(arg) if len(arg) >= 4 else None
    if short in ("unescape", "decodeURIComponent", "decodeURI"):
        return percent_decode(arg)
    if short == "JSON.parse":
        return arg
    return None


def _apply(value: Value, name: str, args: list[Value]) -> Value | None:
    text_args = [a for a in args if isinstance(a, str)]
    if len(text_args) != len(args):
        return None
    if isinstance(value, tuple):
        if name == "reverse" and not args:
            return value[::-1]
        if name == "join" and len(args) <= 1:
            return (text_args[0] if args else ",").join(value)
        return _apply(",".join(value), name, args) if name == "toString" else None
    if name == "split" and len(args) == 1:
        parts = list(value) if not text_args[0] else value.split(text_args[0])
        return tuple(parts) if len(parts) <= MAX_VALUE // 4 else None
    if name == "concat":
        return value + "".join(text_args)
    if name == "replace" and len(args) == 2:
        return value.replace(text_args[0], text_args[1], 1)
    if args:
        return None
    if name == "trim":
        return value.strip()
    if name == "toLowerCase":
        return value.lower()
    if name == "toUpperCase":
        return value.upper()
    return value if name == "toString" else None
