"""Dean Edwards' packer: ``eval(function(p,a,c,k,e,d){...}('payload',62,99,'k0|k1|...'
.split('|'),0,{}))``, recognised by its shape (``eval`` of a function of four to six
parameters, called with a string, a radix, a count and a dictionary), whatever the names.

Unpacking replaces every word of the payload by its dictionary entry, as the packed decoder
does: a word is a number written in the radix (``0-9a-zA-Z`` up to 62; the "high ASCII"
95 variant writes digits as characters 161-255); an empty entry keeps the word itself.
What comes out may be packed again: callers unpack repeatedly, within their depth budget.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from services.extractor.scan import jslex
from services.extractor.scan.budget import Budget

#: Largest dictionary unpacked (real ones hold hundreds of words).
MAX_WORDS: Final = 100_000
#: Longest payload unpacked (characters).
MAX_PAYLOAD: Final = 1024 * 1024
#: The decoder function's body is short (about a hundred tokens); one much longer is no packer.
MAX_BODY_TOKENS: Final = 2000
#: Packed blocks unpacked per script, and ``eval`` calls looked at for one.
MAX_BLOCKS: Final = 32
MAX_EVALS: Final = 256
_DIGITS: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_WORD: Final = re.compile(r"\b\w+\b", re.ASCII)
_HIGH_WORD: Final = re.compile("[\xa1-\xff]+")


@dataclass(frozen=True)
class Packed:
    """The arguments of one packed block."""

    payload: str
    radix: int
    count: int
    words: tuple[str, ...]


def encode(n: int, radix: int) -> str:
    """``n`` as the packer's decoder writes it in ``radix`` (the word it stands for)."""
    if radix > 62:
        out = ""
        while True:
            out = chr(161 + n % radix) + out
            n //= radix
            if n == 0:
                return out
    out = ""
    while True:
        out = _DIGITS[n % radix] + out
        n //= radix
        if n == 0:
            return out


def unpack(packed: Packed, budget: Budget) -> str:
    """The source a packed block runs."""
    radix, count = packed.radix, min(packed.count, MAX_WORDS)
    if not 2 <= radix <= 95 or 62 < radix < 95:
        raise ValueError(f"radix {radix} is not one the packer writes")
    words = packed.words
    table = {}
    for c in range(count):
        code = encode(c, radix)
        table[code] = (words[c] if c < len(words) else "") or code
        if c % 8192 == 0:
            budget.check()
    pattern = _HIGH_WORD if radix == 95 else _WORD
    out = pattern.sub(lambda m: table.get(m[0], m[0]), packed.payload[:MAX_PAYLOAD])
    budget.charge(len(out))
    return out


def find_at(tokens: list[str], budget: Budget) -> Iterator[tuple[int, int, Packed]]:
    """Packed blocks in a script's tokens, in order, with the indexes of their ``eval`` and
    of the token after the block."""
    found = 0
    i = 0
    for _ in range(MAX_EVALS):
        if found == MAX_BLOCKS:
            return
        try:
            i = tokens.index("eval", i) + 1
        except ValueError:
            return
        budget.check()
        args_at = _function_end(tokens, i)
        if args_at is None:
            continue
        packed = _arguments(tokens, args_at)
        if packed is not None:
            found += 1
            yield i - 1, _call_end(tokens, args_at), packed


def _function_end(t: list[str], i: int) -> int | None:
    """After ``eval``: ``( function NAME? ( p1, ..., pN ) { ... } (`` with 4 to 6 parameters;
    the index just past the call's ``(``."""
    if t[i:i + 2] != ["(", "function"]:
        return None
    i += 2
    if i < len(t) and jslex.is_name(t[i]) and t[i] != "(":
        i += 1
    if i >= len(t) or t[i] != "(":
        return None
    params = 0
    i += 1
    while i < len(t) and t[i] != ")":
        if not (jslex.is_name(t[i]) and t[i + 1:i + 2] in ([","], [")"])):
            return None
        params += 1
        i += 1 if t[i + 1] == ")" else 2
    if not 4 <= params <= 6 or t[i + 1:i + 2] != ["{"]:
        return None
    depth, i = 0, i + 1
    for j in range(i, min(len(t), i + MAX_BODY_TOKENS)):
        if t[j] == "{":
            depth += 1
        elif t[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 2 if t[j + 1:j + 2] == ["("] else None
    return None


def _call_end(t: list[str], i: int) -> int:
    """The index after the ``)`` closing the call whose arguments start at ``i`` (and after
    ``eval``'s own ``)``)."""
    depth = 1
    for j in range(i, min(len(t), i + 64)):
        depth += {"(": 1, ")": -1}.get(t[j], 0)
        if depth == 0:
            return j + 2 if t[j + 1:j + 2] == [")"] else j + 1
    return i


def _arguments(t: list[str], i: int) -> Packed | None:
    """``'payload', radix, count, 'w|w|...'.split('|')`` (or an array of strings)."""
    if i + 6 > len(t) or not jslex.is_string(t[i]) or t[i + 1] != "," or t[i + 3] != ",":
        return None
    radix_token, count_token = t[i + 2], t[i + 4]
    if not (radix_token.isdigit() and count_token.isdigit()) or t[i + 5] != ",":
        return None
    words = _dictionary(t, i + 6)
    if words is None:
        return None
    return Packed(jslex.string_value(t[i]), int(radix_token), int(count_token), words)


def _dictionary(t: list[str], i: int) -> tuple[str, ...] | None:
    if i < len(t) and jslex.is_string(t[i]):
        text = jslex.string_value(t[i])
        if t[i + 1:i + 4] == [".", "split", "("] and i + 4 < len(t) and jslex.is_string(t[i + 4]):
            separator = jslex.string_value(t[i + 4]) or "|"
            return tuple(text.split(separator, MAX_WORDS))
        return None
    if i < len(t) and t[i] == "[":
        words: list[str] = []
        for j in range(i + 1, min(len(t), i + 1 + 2 * MAX_WORDS)):
            if t[j] == "]":
                return tuple(words)
            if jslex.is_string(t[j]):
                words.append(jslex.string_value(t[j]))
            elif t[j] != ",":
                return None
    return None
