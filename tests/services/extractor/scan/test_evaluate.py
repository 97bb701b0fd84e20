"""String expressions evaluated without running them: concatenations of literals and of
variables assigned earlier, templates, location, and the functions pages hide strings behind."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.extractor.scan import jslex
from services.extractor.scan.budget import Budget
from services.extractor.scan.evaluate import Evaluator, location_names
from tests.services.extractor.scan.strategies import urls

PAGE = "https://site.test:8443/watch/f1?x=1"


def value(expression: str, env: dict[str, str] | None = None, *, lenient: bool = False,
          ) -> str | None:
    budget = Budget(5)
    tokens = jslex.tokens(f"v = {expression};", budget)
    names = {**location_names(PAGE), **(env or {})}
    result, end = Evaluator(tokens, names, budget).expression(2, lenient=lenient)
    return result if result is None or tokens[end] == ";" else f"stopped at {tokens[end]!r}"


@given(urls(), st.data())
def test_a_url_split_at_random_into_literals_and_variables_is_joined(url: str,
                                                                      data: st.DataObject) -> None:
    """"https://" + "cdn" + host + "/live/" + "x.m3u8", cut anywhere, some parts in vars."""
    cuts = sorted(data.draw(st.sets(st.integers(1, len(url) - 1), max_size=6)))
    parts = [url[a:b] for a, b in zip([0, *cuts], [*cuts, len(url)], strict=True)]
    env = {}
    terms = []
    for n, part in enumerate(parts):
        if data.draw(st.booleans()):
            env[f"_v{n}"] = part
            terms.append(f"_v{n}")
        else:
            terms.append(json.dumps(part) if n % 2 else "'" + part.replace("'", "\\'") + "'")
    assert value(" + ".join(terms), env) == url


@pytest.mark.parametrize(("expression", "expected"), [
    ("'<ifr' + 'ame src=\"' + host + '/embed/' + id + '\"'", '<iframe src="https://h.test/embed/42"'),
    ("`${host}/live/${id}.m3u8`", "https://h.test/live/42.m3u8"),
    ("location.protocol + '//' + location.host + '/g/x.m3u8'", "https://site.test:8443/g/x.m3u8"),
    ("window.location.origin + '/a'", "https://site.test:8443/a"),
    ("atob('aHR0cHM6Ly9jZG4udGVzdC9saXZlLm0zdTg=')", "https://cdn.test/live.m3u8"),
    ("window.atob(\"aHR0cHM6Ly9jZG4udGVzdC9saXZlLm0zdTg\")", "https://cdn.test/live.m3u8"),
    ("unescape('%3Ciframe%20src%3D%22%2Fe%22%3E')", '<iframe src="/e">'),
    ("decodeURIComponent('https%3A%2F%2Fcdn.test%2Fx')", "https://cdn.test/x"),
    ("String.fromCharCode(104,116,116,112)", "http"),
    ("'8u3m.evil/tset.ndc//:sptth'.split('').reverse().join('')", "https://cdn.test/live.m3u8"),
    ("['https:', '', 'cdn.test', 'x.m3u8'].join('/')", "https://cdn.test/x.m3u8"),
    ("('a' + ('b' + 'c')) + 1", "abc1"),
    ("'x'.concat('y', host)", "xyhttps://h.test"),
    ("JSON.parse('{\"file\":\"/x\"}')", '{"file":"/x"}'),
    ("window.host + ''", "https://h.test"),
])
def test_expressions(expression: str, expected: str) -> None:
    """Each supported construct evaluates to the string a browser would build."""
    assert value(expression, {"host": "https://h.test", "id": "42"}) == expected


@pytest.mark.parametrize("expression", [
    "unknown + '/live.m3u8'",  # a variable never assigned
    "f('a') + 'b'",  # the page's own function
    "a.b.c()",
    "'a' - 'b'",
    "cond ? 'a' : 'b'",
    "`${a + b}`",
    "new Date() + ''",
])
def test_what_cannot_be_known_is_none(expression: str) -> None:
    """Unknown, or known only up to an operator this module does not evaluate."""
    result = value(expression)
    assert result is None or result.startswith("stopped at")


def test_lenient_mode_reads_markup_around_unknown_parts() -> None:
    """document.write('<if'+'rame src="...?v='+vid+'&w='+innerWidth+'">'): w left empty."""
    expression = "'<if'+'rame src=\"/e?v='+vid+'&w='+w+'&h='+size()+'\">'"
    assert value(expression, {"vid": "f1"}) is None
    assert value(expression, {"vid": "f1"}, lenient=True) == '<iframe src="/e?v=f1&w=&h=">'


def test_a_long_chain_and_deep_nesting_stay_bounded() -> None:
    """100,000 terms are joined once; nesting past the cap is unknown, not a RecursionError."""
    assert value(" + ".join(["'ab'"] * 100_000)) == "ab" * 100_000
    assert value("(" * 5000 + "'a'" + ")" * 5000) is None


def test_base64_that_is_not_text_is_unknown() -> None:
    """atob of binary is unknown, not garbage."""
    raw = base64.b64encode(bytes(range(40))).decode()
    assert value(f"atob('{raw}')") is None
