"""Hypothesis strategies shared by the scan tests: URLs as pages write them."""

from __future__ import annotations

from hypothesis import strategies as st

_LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
_SEGMENT = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~",
                   min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))
_QUERY = st.text("abcdefghijklmnopqrstuvwxyz0123456789=&-_", max_size=24)


@st.composite
def urls(draw: st.DrawFn, suffix: str = ".m3u8") -> str:
    """An absolute http(s) URL whose path ends in ``suffix`` (``""`` for none)."""
    scheme = draw(st.sampled_from(["http", "https"]))
    host = ".".join(draw(st.lists(_LABEL, min_size=2, max_size=3)))
    port = draw(st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")))
    path = "/".join(draw(st.lists(_SEGMENT, min_size=1, max_size=4)))
    query = draw(_QUERY)
    return f"{scheme}://{host}{port}/{path}{suffix}" + (f"?{query}" if query else "")
