"""``slipstream sources check URL``: run the extractor chain once and show what each found.

For operators adding a source, in the spirit of ``yt-dlp -F``: every extractor of the chain is
tried (not only until the first success), with its time, what it found, and the variants of
the playlist it found.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import httpx

from services.extractor import registry
from services.extractor.extractors.browser import CHROMIUM
from services.extractor.registry import Context
from services.extractor.resolve import attempt
from shared.egress import EgressPolicy, client, policy_for
from shared.egress_proxy import EgressProxy
from shared.runtime import read_runtime
from shared.settings import Settings, SettingsError, SourceSettings, load_settings
from shared.sources import CandidateVerdict, CheckAttempt, CheckReply, redact


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
                tried, judged = await attempt(entry.name, url, ctx)
                ms = tried.elapsed_ms
                if judged.live is None:
                    out.append(f"{entry.name:<11} {'failed':<7} {ms:>6.0f}ms  {tried.detail}")
                else:
                    worked += 1
                    found, result = judged.live
                    needs = ", ".join([*(f"header {h}" for h in found.headers),
                                       *(f"cookie {c}" for c in found.cookies)]) or "nothing"
                    out.append(f"{entry.name:<11} {result.health.value:<7} {ms:>6.0f}ms  "
                               f"{found.url}")
                    out.append(f"{'':<29}needs {needs}; {result.detail}; "
                               f"{result.latency_ms:.0f} ms")
                    out.extend(f"{'':<29}{v.width or '?'}x{v.height or '?'} "
                               f"{v.bandwidth // 1000} kb/s {v.codecs}" for v in result.variants)
                for n, v in enumerate(tried.candidates, 1):
                    via = f" ({v.via})" if v.via else ""
                    out.append(f"{'':<29}candidate {n}{via}: {v.verdict}: {v.why}: {v.url}")
        finally:
            await CHROMIUM.shutdown()
    return 0 if worked else 1


async def check_source(source: SourceSettings, url: str, ctx: Context) -> CheckReply:
    """Every extractor of the source's chain on its page now, each candidate with its verdict
    (what the admin page's "check now" shows). URL queries and the source's header and cookie
    values are taken out of what it says."""
    secrets = [*source.headers.values(), *source.cookies.values()]
    attempts: list[CheckAttempt] = []
    for entry in registry.chain(source.extractor, url):
        tried, judged = await attempt(entry.name, url, ctx)
        attempts.append(CheckAttempt(
            extractor=entry.name, ok=judged.live is not None, elapsed_ms=round(tried.elapsed_ms, 1),
            detail=redact(tried.detail, secrets)[:500],
            candidates=[CandidateVerdict(url=redact(v.url, secrets), via=v.via, verdict=v.verdict,
                                         why=redact(v.why, secrets)[:300])
                        for v in tried.candidates]))
    return CheckReply(source_id=source.id, page_url=redact(url, secrets),
                      ok=any(a.ok for a in attempts), attempts=attempts)


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
