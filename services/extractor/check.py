"""``slipstream sources check URL``: run the extractor chain once and show what each found.

For operators adding a source, in the spirit of ``yt-dlp -F``: every extractor of the chain is
tried (not only until the first success), with its time, what it found, and the variants of
the playlist it found.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence

import httpx

from services.extractor import registry
from services.extractor.extractors.browser import CHROMIUM
from services.extractor.probe import ProbeError, probe
from services.extractor.registry import Context, ExtractionError
from services.extractor.resolve import InvalidOutputError, validate
from shared.egress import EgressPolicy, client, policy_for
from shared.egress_proxy import EgressProxy
from shared.runtime import read_runtime
from shared.settings import Settings, SettingsError, load_settings


def _policy(settings: Settings) -> EgressPolicy:
    """The extractor's policy, plus the demo origin of a running ``slipstream up``."""
    policy = policy_for(settings)
    info = read_runtime(settings.data_path)
    if info is None or not info.demo_url:
        return policy
    demo = EgressPolicy.from_strings([httpx.URL(info.demo_url).netloc.decode()])
    return EgressPolicy(policy.allow | demo.allow)


async def check(url: str, choice: str, settings: Settings, out: list[str]) -> int:
    """Try each extractor on ``url``; append report lines to ``out``; 0 if one worked."""
    policy = _policy(settings)
    worked = 0
    async with client(policy) as http, EgressProxy(policy) as proxy:
        ctx = Context(client=http, policy=policy, deadline=settings.extractor.deadline,
                      chromium=settings.extractor.chromium, proxy=proxy.url)
        out.append(f"{'extractor':<11} {'result':<7} {'time':>8}  found")
        try:
            for entry in registry.chain(choice, url):
                started = time.monotonic()
                try:
                    async with asyncio.timeout(ctx.deadline):
                        found = validate(await registry.get(entry.name).extract(url, ctx))
                        result = await probe(http, policy, found.url, headers=found.headers,
                                             cookies=found.cookies, deadline=ctx.deadline)
                except (ExtractionError, ProbeError, InvalidOutputError, TimeoutError) as exc:
                    reason = getattr(exc, "reason", "") or str(exc) or "timed out"
                    ms = (time.monotonic() - started) * 1000
                    out.append(f"{entry.name:<11} {'failed':<7} {ms:>6.0f}ms  {reason}")
                    continue
                ms = (time.monotonic() - started) * 1000
                worked += 1
                needs = ", ".join([*(f"header {h}" for h in found.headers),
                                   *(f"cookie {c}" for c in found.cookies)]) or "nothing"
                out.append(f"{entry.name:<11} {result.health.value:<7} {ms:>6.0f}ms  {found.url}")
                out.append(f"{'':<29}needs {needs}; {result.detail}; {result.latency_ms:.0f} ms")
                out.extend(f"{'':<29}{v.width or '?'}x{v.height or '?'} {v.bandwidth // 1000} kb/s "
                           f"{v.codecs}" for v in result.variants)
        finally:
            await CHROMIUM.shutdown()
    return 0 if worked else 1


def main(argv: Sequence[str]) -> int:
    """``python -m services.extractor check URL [--extractor NAME] [--config FILE]``."""
    p = argparse.ArgumentParser(prog="slipstream sources check",
                                description="Run the extractor chain on a page and show what "
                                            "each extractor finds.")
    p.add_argument("url")
    p.add_argument("--extractor", default="auto",
                   choices=["auto", *(e.name for e in registry.REGISTRY)])
    p.add_argument("--config", metavar="FILE")
    args = p.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"slipstream sources check: {exc}", file=sys.stderr)
        return 2
    lines: list[str] = []
    code = asyncio.run(check(args.url, args.extractor, settings, lines))
    print("\n".join(lines))
    return code
