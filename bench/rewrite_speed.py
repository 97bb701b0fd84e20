"""Rewriting a 1,000-segment media playlist against parsing and dumping it with ``m3u8``.

Both measured side by side in one run; prints microseconds per playlist and the ratio, and
records the relay's two figures (first sight of a window's URLs, and its next refresh) in
``test-artifacts/bench.json`` with the spread of five rounds (each the best of 7 repeats). Two
minters are timed: a plain lookup, and one that derives an opaque 64-bit id per URL with keyed
BLAKE2b (what an unforgeable, replica-consistent relay URL costs without a signature per URL).

    .venv/bin/python bench/rewrite_speed.py
"""

from __future__ import annotations

import hashlib
import statistics
import timeit

import m3u8

from bench.report import record
from services.relay.relay import SLOT, Relay
from services.relay.rewrite import Refresh, rewrite
from shared.kvmirror import KvMirror
from shared.relay_urls import Signer
from shared.streams import StreamRecord

BASE = "https://cdn.example.test/live/event/720p/index.m3u8?token=abcdef"


def window(first: int) -> str:
    """The live window of 1,000 segments starting at segment ``first`` (a refresh of the
    window starting at ``first - 1``: one segment gone at the start, one new at the end)."""
    return "\n".join([
        "#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2",
        f"#EXT-X-MEDIA-SEQUENCE:{500000 + first}",
        *[f"#EXT-X-PROGRAM-DATE-TIME:2026-05-03T{20 + i // 1800:02d}:{i // 30 % 60:02d}:"
          f"{i * 2 % 60:02d}.000Z\n#EXTINF:2.000,\nseg_{500000 + i}.ts?sig=0123456789abcdef"
          for i in range(first, first + 1000)], ""])


TEXT = window(0)
#: Windows for the refresh figure: each run rewrites the next one.
WINDOWS = [window(i) for i in range(1, 800)]


def plain_mint(url: str, kind: str, ext: str) -> str:
    return f"/s/TOKEN/{kind}/{len(url)}{ext or '.ts'}"


KEY = b"k" * 32


def keyed_mint(url: str, kind: str, ext: str) -> str:
    ref = hashlib.blake2b(url.encode(), key=KEY, digest_size=8).hexdigest()
    return f"/s/TOKEN/{kind}/{ref}{ext or '.ts'}"


def relay_minters() -> tuple[object, object]:
    """The relay's own rewrite, cold (every URL new to it) and on a refresh (the next window of
    the playlist it rewrote last), as :meth:`Relay.playlist` calls it."""
    relay = Relay(Signer(b"s" * 32), KvMirror(StreamRecord), None)  # type: ignore[arg-type]
    key = "2026.bench.race.bench"

    def cold() -> str:
        relay.refs.clear()
        relay._paths.clear()
        mint, many = relay._minter(key, SLOT, BASE)
        return rewrite(TEXT, BASE, mint, mint_many=many, refresh=Refresh())

    refresh = Refresh()
    mint, many = relay._minter(key, SLOT, BASE)
    rewrite(TEXT, BASE, mint, mint_many=many, refresh=refresh)
    windows = iter(WINDOWS)

    def warm() -> str:
        return rewrite(next(windows), BASE, mint, mint_many=many, refresh=refresh)

    return cold, warm


def best(stmt: object, number: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=7)) / number * 1e6  # type: ignore[arg-type]


def main() -> None:
    rewrite(TEXT, BASE, keyed_mint)  # warm-up
    cold, warm = relay_minters()
    rounds: dict[str, list[float]] = {"m3u8": [], "plain": [], "keyed": [], "cold": [], "warm": []}
    for _ in range(5):  # interleaved, so a busy moment of the machine hits every figure alike
        rounds["m3u8"].append(best(lambda: m3u8.loads(TEXT, uri=BASE).dumps(), 5))
        rounds["plain"].append(best(lambda: rewrite(TEXT, BASE, plain_mint), 50))
        rounds["keyed"].append(best(lambda: rewrite(TEXT, BASE, keyed_mint), 50))
        rounds["cold"].append(best(cold, 50))
        rounds["warm"].append(best(warm, 20))  # 5 x 7 x 20 windows in all
    med = {k: statistics.median(v) for k, v in rounds.items()}
    m3u8_us = med["m3u8"]

    def spread(name: str) -> str:
        ratios = [m / v for m, v in zip(rounds["m3u8"], rounds[name], strict=True)]
        return f"{min(ratios):.1f}-{max(ratios):.1f}x over 5 rounds"

    print("1,000-segment media playlist, median of 5 rounds (each the best of 7 runs)")
    print(f"  m3u8 loads + dumps         {m3u8_us:9.0f} us")
    for name, label in (("plain", "rewrite, plain minter     "),
                        ("keyed", "rewrite, keyed-hash minter"),
                        ("cold", "relay, first sight of URLs"),
                        ("warm", "relay, the next window    ")):
        print(f"  {label} {med[name]:9.0f} us   {m3u8_us / med[name]:5.1f}x faster ({spread(name)})")
    print("  targets: first sight >= 20x, refresh >= 30x")
    for name, figure, target in (("cold", "first sight", "20x"), ("warm", "refresh", "30x")):
        record(f"rewrite 1000-segment playlist, {figure}", med[name], "us",
               anchor_name="m3u8 loads+dumps", anchor_value=m3u8_us,
               spread=spread(name), note=f"ratio is time/anchor (lower is better); target "
                                         f"{target} faster, i.e. ratio <= {1 / int(target[:-1]):.3f}")


if __name__ == "__main__":
    main()
