"""What cleaning cloaked segments costs the relay: a 2 MB MPEG-TS segment with a 1x1 PNG in
front, against the same segment plain, and against not sniffing at all.

Two levels, measured side by side in one run (best of several rounds, since the machine is
shared): the pure Cleaner fed 64 KiB chunks, and the relay's whole upstream fill path
(``Upstream.segment``: httpx streaming from an in-process transport, the shared body, the cache).

    .venv/bin/python bench/cleaning.py
"""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx

from services.relay.sniff import Cleaner
from services.relay.upstream import Upstream
from shared.egress import EgressPolicy

MEDIA = Path(__file__).resolve().parent.parent / "services" / "demo" / "media" / "360p"
CHUNK = 64 * 1024
SIZE = 2 * 1024 * 1024


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 5)) + chunk(b"IEND", b""))


def segment() -> bytes:
    ts = b"".join(p.read_bytes() for p in sorted(MEDIA.glob("*.ts")))
    while len(ts) < SIZE:
        ts += ts
    return ts[: SIZE // 188 * 188]


def best(run: Callable[[], object], rounds: int = 30) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times) * 1e6


def cleaner_us(body: bytes) -> float:
    def run() -> None:
        cleaner = Cleaner()
        for i in range(0, len(body), CHUNK):
            cleaner.feed(body[i:i + CHUNK])
        cleaner.finish()
    return best(run)


def fill_us(variants: dict[str, tuple[bytes, bool]], rounds: int = 40) -> dict[str, float]:
    """Microseconds for Upstream to fetch, stream and cache a new segment URL, per variant
    (body, clean); the variants take turns, so load on the machine hits them alike."""
    async def run() -> dict[str, float]:
        best_of = {name: float("inf") for name in variants}
        for i in range(rounds):
            for name, (body, clean) in variants.items():
                class Chunks(httpx.AsyncByteStream):
                    async def __aiter__(self, body: bytes = body) -> AsyncIterator[bytes]:
                        for at in range(0, len(body), CHUNK):  # as a socket delivers it
                            yield body[at:at + CHUNK]

                def handler(_: httpx.Request) -> httpx.Response:
                    return httpx.Response(200, stream=Chunks())

                async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
                    up = Upstream(client, EgressPolicy.from_strings(["origin.test:80"]))
                    started = time.perf_counter()
                    got = await up.segment(f"http://origin.test/{i}.png", {}, {},
                                           clean=clean).complete()
                    elapsed = time.perf_counter() - started
                    await up.close()
                assert len(got) == SIZE // 188 * 188
                best_of[name] = min(best_of[name], elapsed * 1e6)
        return best_of
    return asyncio.run(run())


def main() -> None:
    plain = segment()
    cloaked = _png() + plain
    print(f"{len(plain) / 1e6:.1f} MB MPEG-TS segment, 64 KiB chunks, best of 30 / 40")
    print(f"  Cleaner, plain TS            {cleaner_us(plain):8.0f} us")
    print(f"  Cleaner, 1x1 PNG in front    {cleaner_us(cloaked):8.0f} us")
    fills = fill_us({"not sniffed (raw)": (plain, False), "plain TS": (plain, True),
                     "cloaked, cleaned": (cloaked, True)})
    for name, us in fills.items():
        print(f"  relay fill, {name:18} {us:8.0f} us")


if __name__ == "__main__":
    main()
