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
from services.relay.relay import Relay
from services.relay.rewrite import rewrite
from shared.kvmirror import KvMirror
from shared.relay_urls import Signer
from shared.streams import StreamRecord

BASE = "https://cdn.example.test/live/event/720p/index.m3u8?token=abcdef"
TEXT = "\n".join([
    "#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:500000",
    *[f"#EXT-X-PROGRAM-DATE-TIME:2026-05-03T20:{i // 30 % 60:02d}:{i * 2 % 60:02d}.000Z\n"
      f"#EXTINF:2.000,\nseg_{500000 + i}.ts?sig=0123456789abcdef" for i in range(1000)], ""])


def plain_mint(url: str, kind: str, ext: str) -> str:
    return f"/s/TOKEN/{kind}/{len(url)}{ext or '.ts'}"


KEY = b"k" * 32


def keyed_mint(url: str, kind: str, ext: str) -> str:
    ref = hashlib.blake2b(url.encode(), key=KEY, digest_size=8).hexdigest()
    return f"/s/TOKEN/{kind}/{ref}{ext or '.ts'}"


def relay_minters() -> tuple[object, object]:
    """The relay's own minter, cold (every URL new) and warm (the next refresh of a window)."""
    relay = Relay(Signer(b"s" * 32), KvMirror(StreamRecord), None)  # type: ignore[arg-type]
    prefix = "/s/2026.bench.race/bench/abc.SIGNATURE"

    def cold() -> str:
        relay.refs.clear()
        relay._paths.clear()
        return rewrite(TEXT, BASE, relay._minter("2026.bench.race.bench", prefix))

    def warm() -> str:
        return rewrite(TEXT, BASE, relay._minter("2026.bench.race.bench", prefix))

    return cold, warm


def best(stmt: object, number: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=7)) / number * 1e6  # type: ignore[arg-type]


def main() -> None:
    rewrite(TEXT, BASE, keyed_mint)  # warm-up
    cold, warm = relay_minters()
    warm()
    rounds: dict[str, list[float]] = {"m3u8": [], "plain": [], "keyed": [], "cold": [], "warm": []}
    for _ in range(5):  # interleaved, so a busy moment of the machine hits every figure alike
        rounds["m3u8"].append(best(lambda: m3u8.loads(TEXT, uri=BASE).dumps(), 5))
        rounds["plain"].append(best(lambda: rewrite(TEXT, BASE, plain_mint), 50))
        rounds["keyed"].append(best(lambda: rewrite(TEXT, BASE, keyed_mint), 50))
        rounds["cold"].append(best(cold, 50))
        rounds["warm"].append(best(warm, 50))
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
                        ("warm", "relay, next refresh       ")):
        print(f"  {label} {med[name]:9.0f} us   {m3u8_us / med[name]:5.1f}x faster ({spread(name)})")
    print("  targets: first sight >= 20x, refresh >= 30x")
    for name, figure, target in (("cold", "first sight", "20x"), ("warm", "refresh", "30x")):
        record(f"rewrite 1000-segment playlist, {figure}", med[name], "us",
               anchor_name="m3u8 loads+dumps", anchor_value=m3u8_us,
               spread=spread(name), note=f"ratio is time/anchor (lower is better); target "
                                         f"{target} faster, i.e. ratio <= {1 / int(target[:-1]):.3f}")


if __name__ == "__main__":
    main()
