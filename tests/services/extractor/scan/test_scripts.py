"""A script's strings, and which sit in a player's field or an HLS-typed object: jwplayer,
Clappr, video.js, Plyr, hls.js and homemade players, as pages write them."""

from __future__ import annotations

import pytest

from services.extractor.scan import jslex, scripts
from services.extractor.scan.budget import Budget
from tests.services.extractor.scan.test_packer import pack


def items(script: str, env: dict[str, str] | None = None) -> list[tuple[str, str, bool]]:
    budget = Budget(5)
    found = scripts.walk(jslex.tokens(script, budget), env if env is not None else {}, budget)
    return [(i.value, i.kind, i.typed) for i in found]


def players(script: str) -> list[str]:
    return [value for value, kind, _ in items(script) if kind == "player"]


@pytest.mark.parametrize(("script", "url"), [
    ("jwplayer('p').setup({file: 'https://cdn.test/live/mono.css'});", "https://cdn.test/live/mono.css"),
    ("jwplayer('p').setup({sources: [{file: '/hls/chunks', label: 'HD'}]});", "/hls/chunks"),
    ("jwplayer('p').setup({playlist: [{sources: [{file: '/p.txt'}]}]});", "/p.txt"),
    ("new Clappr.Player({source: '//cdn.test/s.php?id=3', parentId: '#p'});", "//cdn.test/s.php?id=3"),
    ("videojs('v').src({src: '/live/stream', type: 'application/x-mpegURL'});", "/live/stream"),
    ("player.source = {type: 'video', sources: [{src: '/x/y', provider: 'html5'}]};", "/x/y"),
    ("hls.loadSource('/cdn/index');", "/cdn/index"),
    ("new SlipPlayer('v').load(base + '/live');", "https://h.test/live"),
    ('var config = {"hls": "https:\\/\\/cdn.test\\/a"};', "https://cdn.test/a"),
    ("var c = {'file': atob('aHR0cHM6Ly9jZG4udGVzdC9zdHJlYW0=')};", "https://cdn.test/stream"),
    ("const dp = new DPlayer({video: {url: '/dp/live', type: 'hls'}});", "/dp/live"),
    ("cfg.file = '/assigned/live';", "/assigned/live"),
    ("p.setup({sources: ['/one', '/two']});", "/one"),
])
def test_player_fields_are_found(script: str, url: str) -> None:
    """Each player's way of naming its source puts the URL in the player tier."""
    budget = Budget(5)
    found = scripts.walk(jslex.tokens(script, budget), {"base": "https://h.test"}, budget)
    assert url in [i.value for i in found if i.kind == "player"]


@pytest.mark.parametrize("script", [
    "ga('send', 'pageview', '/watch/f1');",
    "var adcfg = {zone: 4, tag: 'https://ads.test/vast.xml'};",
    "window._pop = {url: '/ads/landing', every: 3600};",
    "var title = 'F1 live';",
    "var file = '/not/in/a/field';",  # a variable's name says nothing
    "$('#p').attr('data-x', '/y');",
])
def test_other_strings_are_not_player_fields(script: str) -> None:
    """Analytics, ads, popunders and plain variables are not player fields."""
    assert players(script) == []


def test_an_object_typed_hls_types_its_urls() -> None:
    """type: 'hls' or an HLS MIME type anywhere in the object, before or after the URL."""
    found = items("p.setup({playlist: [{sources: [{file: '/ad/a', type: 'mp4'}]},"
                  "{sources: [{type: 'application/vnd.apple.mpegurl', file: '/live/b'}]}]});")
    assert ("/live/b", "player", True) in found
    assert ("/ad/a", "player", False) in found


def test_variables_assigned_earlier_in_the_page_are_used_and_forgotten() -> None:
    """Assigned strings are remembered, appended to, and forgotten when reassigned to the unknown."""
    env: dict[str, str] = {}
    items("var host = 'https://cdn.test'; var id = \"77\";", env)
    assert env == {"host": "https://cdn.test", "id": "77"}
    assert ("https://cdn.test/live/77.m3u8", "string", False) in items(
        "var u = host + '/live/' + id + '.m3u8';", env)
    items("host = compute();", env)
    assert "host" not in env
    items("id += '8';", env)
    assert env["id"] == "778"


def test_markup_a_script_writes_is_an_item() -> None:
    """A document.write of concatenated markup is one markup item."""
    found = items("var vid='f1';document.write('<if'+'rame src=\"/e/'+vid+'?w='+innerWidth"
                  "+'\"></if'+'rame>');")
    assert ('<iframe src="/e/f1?w="></iframe>', "markup", False) in found


def test_packed_blocks_become_items_where_they_stand() -> None:
    """A packed block is replaced by its source, in place, and its own strings are not items."""
    found = items(f"var a='first';{pack('var x=1;')};var b='last';")
    assert [(v, k) for v, k, _ in found] == [("first", "string"), ("var x=1;", "packed"),
                                             ("last", "string")]
