"""Rewriting a 1,000-segment media playlist against parsing and dumping it with ``m3u8``.

Both measured side by side in one run; prints microseconds per playlist and the ratio. Two
minters are timed: a plain lookup, and one that derives an opaque 64-bit id per URL with keyed
BLAKE2b (what an unforgeable, replica-consistent relay URL costs without a signature per URL).

    .venv/bin/python bench/rewrite_speed.py
"""

from __future__ import annotations

import hashlib
import timeit

import m3u8

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
    m3u8_us = best(lambda: m3u8.loads(TEXT, uri=BASE).dumps(), 5)
    plain_us = best(lambda: rewrite(TEXT, BASE, plain_mint), 50)
    keyed_us = best(lambda: rewrite(TEXT, BASE, keyed_mint), 50)
    cold, warm = relay_minters()
    warm()
    cold_us = best(cold, 50)
    warm_us = best(warm, 50)
    print("1,000-segment media playlist, best of 7 runs")
    print(f"  m3u8 loads + dumps         {m3u8_us:9.0f} us")
    print(f"  rewrite, plain minter      {plain_us:9.0f} us   {m3u8_us / plain_us:5.1f}x faster")
    print(f"  rewrite, keyed-hash minter {keyed_us:9.0f} us   {m3u8_us / keyed_us:5.1f}x faster")
    print(f"  relay, first sight of URLs {cold_us:9.0f} us   {m3u8_us / cold_us:5.1f}x faster")
    print(f"  relay, next refresh        {warm_us:9.0f} us   {m3u8_us / warm_us:5.1f}x faster")


if __name__ == "__main__":
    main()
