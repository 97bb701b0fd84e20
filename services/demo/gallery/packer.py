"""Dean Edwards' packer (``eval(function(p,a,c,k,e,d){...}(...))``), the encoder side.

Pages on live-sport embed sites hide their player setup this way. The output is the format the
original Packer 3 writes with base 62: every word (``\\w+``) of the source is replaced by its
index in a dictionary, written in base 62 (``0-9a-zA-Z``); the dictionary is sorted by frequency,
and a word that is itself a valid index keeps that index with an empty dictionary entry (the
decoder's ``k[c]||e(c)``), so the packed text stays decodable in one regex pass.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Final

RADIX: Final = 62
_WORD: Final = re.compile(r"\b\w+\b", re.ASCII)

#: The decoder, exactly as Packer 3 writes it (base 62).
DECODER: Final = (
    "eval(function(p,a,c,k,e,d){e=function(c){return(c<a?'':e(parseInt(c/a)))+((c=c%a)>35?"
    "String.fromCharCode(c+29):c.toString(36))};if(!''.replace(/^/,String)){while(c--){d[e(c)]"
    "=k[c]||e(c)}k=[function(e){return d[e]}];e=function(){return'\\\\w+'};c=1};while(c--){if(k[c])"
    "{p=p.replace(new RegExp('\\\\b'+e(c)+'\\\\b','g'),k[c])}}return p}"
)


def encode_index(n: int) -> str:
    """``n`` in the decoder's base 62: ``0-9``, ``a-z``, then ``A-Z``."""
    digit = n % RADIX
    char = chr(digit + 29) if digit > 35 else "0123456789abcdefghijklmnopqrstuvwxyz"[digit]
    return (encode_index(n // RADIX) if n >= RADIX else "") + char


def _dictionary(source: str) -> list[str]:
    """Words by index; ``""`` where the word is its own index."""
    counts = Counter(_WORD.findall(source))
    # Most frequent first (shortest codes); ties in order of first appearance, as Packer does.
    order = {w: i for i, w in reversed(list(enumerate(_WORD.findall(source))))}
    words = sorted(counts, key=lambda w: (-counts[w], order[w]))
    size = len(words)
    codes = {encode_index(i): i for i in range(size)}
    slots: list[str | None] = [None] * size
    rest = []
    for word in words:
        index = codes.get(word)
        if index is not None:
            slots[index] = ""  # the word is this index's own code: the decoder keeps it as is
        else:
            rest.append(word)
    free = (i for i, s in enumerate(slots) if s is None)
    for word, index in zip(rest, free, strict=False):
        slots[index] = word
    return [s or "" for s in slots]


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "")


def pack(source: str) -> str:
    """``source`` (JavaScript) packed: one ``eval(...)`` statement that runs it."""
    dictionary = _dictionary(source)
    index = {w: i for i, w in enumerate(dictionary) if w}
    payload = _WORD.sub(lambda m: encode_index(index[m[0]]) if m[0] in index else m[0], source)
    return (f"{DECODER}('{_quote(payload)}',{RADIX},{len(dictionary)},"
            f"'{'|'.join(dictionary)}'.split('|'),0,{{}}))")
