"""JavaScript tokens, enough to read string expressions: string and template literals,
identifiers, numbers and punctuation, with comments and regex literals set aside.

One linear regex: every repetition is possessive and every alternative starts with a
different character, so no input makes it backtrack. Regex literals are recognised by the
token before them (a ``/`` after ``(``, ``=``, ``return``... starts one) and bounded in
length; a longer one is read as punctuation, which at worst mis-reads that line.
"""

from __future__ import annotations

import re
from typing import Final

from services.extractor.scan.budget import Budget
from services.extractor.scan.escapes import js_unescape

__all__ = ["MAX_SCRIPT", "TOKEN", "is_name", "is_string", "is_template", "js_unescape",
           "string_value", "template_body", "tokens"]

#: Longest script (characters) one lexer call reads; the rest is not looked at.
MAX_SCRIPT: Final = 1024 * 1024
#: Up to this size the whole script is lexed in one C call (fast); above it token by token, so
#: the thread releases the GIL between tokens and the budget is checked as it goes.
_ONE_CALL: Final = 128 * 1024

TOKEN: Final = re.compile(
    r"""
      //[^\n]*+
    | /\*(?:[^*]++|\*(?!/))*+(?:\*/)?
    | (?:(?<=[(,=:\[!&|?{};+\-*%<>~^])|(?<=\breturn)|(?<=\btypeof))\s*+
      /(?![*/])(?:[^/\\\n\[]|\\[^\n]|\[(?:[^\]\\\n]|\\[^\n]){0,64}+\]){1,100}+/[a-z]{0,8}+
    | '[^'\\\n]*+(?:\\[\s\S][^'\\\n]*+)*+'?
    | "[^"\\\n]*+(?:\\[\s\S][^"\\\n]*+)*+"?
    | `[^`\\]*+(?:\\[\s\S][^`\\]*+)*+`?
    | [A-Za-z_$\u0080-\uffff][\w$\u0080-\uffff]*+
    | \d[\w.]*+
    | \S
    """,
    re.VERBOSE,
)


def tokens(script: str, budget: Budget) -> list[str]:
    """The tokens of ``script`` (its first :data:`MAX_SCRIPT` characters), comments and
    regex literals left out."""
    script = script[:MAX_SCRIPT]
    if len(script) <= _ONE_CALL:
        found = TOKEN.findall(script)
    else:
        found = []
        for n, m in enumerate(TOKEN.finditer(script)):
            found.append(m[0])
            if n % 4096 == 0:
                budget.check()
    # Comments (//, /*) and regex literals (which may start with the spaces before them) go;
    # a lone "/" is division and stays.
    return [t for t in found if len(t) == 1 or (t[0] != "/" and not t[0].isspace())]


def is_string(token: str) -> bool:
    return token[0] in "'\""


def is_template(token: str) -> bool:
    return token[0] == "`"


def is_name(token: str) -> bool:
    return token[0].isalpha() or token[0] in "_$"


def string_value(token: str) -> str:
    """The value of a string literal token (an unterminated one up to where it stops)."""
    end = -1 if len(token) > 1 and token[-1] == token[0] else len(token)
    return js_unescape(token[1:end])


def template_body(token: str) -> str:
    end = -1 if len(token) > 1 and token[-1] == "`" else len(token)
    return token[1:end]
