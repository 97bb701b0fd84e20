"""Dean Edwards' packer, unpacked by shape: any radix the packer writes (2 to 62, and the 95
"high ASCII" variant), any parameter names, packed inside packed, several blocks a script."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.extractor.scan import jslex, packer
from services.extractor.scan.budget import Budget
from tests.services.extractor.scan.strategies import urls

_WORD = re.compile(r"\b\w+\b", re.ASCII)
DECODER = ("{{e=function(c){{return(c<a?'':e(parseInt(c/a)))+((c=c%a)>35?String.fromCharCode"
           "(c+29):c.toString(36))}};if(!''.replace(/^/,String)){{while(c--){{d[e(c)]=k[c]||e(c)}}"
           "k=[function(e){{return d[e]}}];e=function(){{return'\\\\w+'}};c=1}};while(c--)"
           "{{if(k[c]){{p=p.replace(new RegExp('\\\\b'+e(c)+'\\\\b','g'),k[c])}}}}return p}}")


def pack(source: str, radix: int = 62, names: str = "p,a,c,k,e,d") -> str:
    """``source`` packed as the packer writes it: words by frequency, each replaced by its
    index in ``radix``; a word that is its own code keeps an empty dictionary entry."""
    counts = Counter(_WORD.findall(source))
    words = sorted(counts, key=lambda w: -counts[w])
    codes = [packer.encode(i, radix) for i in range(len(words))]
    table = dict(zip(words, codes, strict=True))
    dictionary = ["" if table[w] == w else w for w in words]
    payload = _WORD.sub(lambda m: table[m[0]], source)
    quoted = payload.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return (f"eval(function({names}){DECODER.format()}('{quoted}',{radix},{len(words)},"
            f"'{'|'.join(dictionary)}'.split('|'),0,{{}}))")


def unpacked(script: str) -> list[str]:
    budget = Budget(10)
    return [packer.unpack(block, budget)
            for _, _, block in packer.find_at(jslex.tokens(script, budget), budget)]


@given(urls(), st.one_of(st.integers(2, 62), st.just(95)))
def test_a_packed_player_setup_unpacks_to_its_source(url: str, radix: int) -> None:
    """pack(source) in any radix -> unpack gives the source back, URL included."""
    source = f'var player=new Clappr.Player({{source:"{url}",autoPlay:true}});'
    assert unpacked(pack(source, radix)) == [source]


@given(st.text("abcdefghijklmnopqrstuvwxyz0123456789_ .:/'\"(){};=+-", max_size=200))
def test_any_ascii_source_round_trips_in_base_62(source: str) -> None:
    """Whatever the source's words and punctuation, unpacking inverts packing."""
    assert unpacked(pack(source)) == [source]


def test_parameter_names_do_not_matter() -> None:
    """The shape is eval(function(4 to 6 names){...}(string, radix, count, dictionary))."""
    source = 'jwplayer("p").setup({file:"https://cdn.test/live/x.m3u8"});'
    assert unpacked(pack(source, names="x1,y2,z3,w4,v5,u6")) == [source]
    assert unpacked(pack(source, names="q,w,e,r")) == [source]


def test_packed_twice_unpacks_twice() -> None:
    """The outer block unpacks to the inner packed block, which unpacks to the source."""
    source = 'var s="https://cdn.test/a/index.m3u8?md5=x&expires=1";'
    outer = unpacked(pack(pack(source)))
    assert len(outer) == 1
    assert unpacked(outer[0]) == [source]


def test_several_blocks_unpack_in_order() -> None:
    """Two packed blocks in one script both unpack, in order."""
    first, second = "var ad='https://ads.test/vast.xml';", "var hls='/live/master.m3u8';"
    script = f"{pack(first)};\nconsole.log(1);{pack(second, 36)}"
    assert unpacked(script) == [first, second]


def test_the_gallerys_packer_output_unpacks() -> None:
    """The demo gallery's own encoder (base 62, Packer 3's dictionary layout) is read too."""
    gallery = pytest.importorskip("services.demo.gallery.packer")
    source = "var player=new Clappr.Player({source:'https://cdn.test/hls/index.m3u8'});"
    assert unpacked(gallery.pack(source)) == [source]
    assert unpacked(unpacked(gallery.pack(gallery.pack(source)))[0]) == [source]


@pytest.mark.parametrize("script", [
    "eval(function(a,b){return a+b}('x',62,1,'a'.split('|'),0,{}))",  # two parameters
    "eval('var x=1')",
    "eval(function(p,a,c,k,e,d){return p}(p,62,1,'a'.split('|')))",  # payload not a string
    "eval(function(p,a,c,k,e,d){return p}('0',x,1,'a'.split('|')))",  # radix not a number
    "eval(function(p,a,c,k,e,d){return p}('0',62,1,k))",  # dictionary not a literal
    "eval(function(p,a,c,k,e,d){return p",  # cut short
    "function pack(p,a,c,k,e,d){} pack('0',62,1,'a'.split('|'))",  # no eval
])
def test_what_is_not_a_packed_block_is_left_alone(script: str) -> None:
    """Shapes close to the packer's, but not it, are not unpacked."""
    assert unpacked(script) == []


def test_a_radix_the_packer_never_writes_is_refused() -> None:
    """Radix 70 has no digits: the block is recognised but not unpacked."""
    budget = Budget(5)
    (_, _, block), = packer.find_at(jslex.tokens(pack("var a=1;", 62).replace(",62,", ",70,"),
                                                 budget), budget)
    with pytest.raises(ValueError, match="radix"):
        packer.unpack(block, Budget(5))
