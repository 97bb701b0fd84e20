"""Entry point of the ``slipstream`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx

from services.cli.calendar_table import find_calendar, render
from services.cli.supervisor import python_module
from services.cli.up import up
from shared.calendar import CalendarError
from shared.runtime import read_runtime
from shared.settings import Settings, SettingsError, load_settings

SERVICES = ("scheduler", "extractor", "relay", "gateway", "demo")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="slipstream",
        description="Slipstream: live F1 session streams, found, checked and relayed.",
        epilog="Settings: SLIPSTREAM_* environment variables and the TOML file; see the README.")
    p.add_argument("--config", metavar="FILE", help="TOML settings file (default: $SLIPSTREAM_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("up", help="run everything on this machine: NATS, the services, the demo")
    sub.add_parser("status", help="show what a running `slipstream up` is doing")
    cal = sub.add_parser("calendar", help="print the season's sessions (works offline)")
    cal.add_argument("--season", type=int, metavar="YEAR", help="the season to show")
    src = sub.add_parser("sources", help="work with stream sources")
    src_sub = src.add_subparsers(dest="sources_command", required=True, metavar="COMMAND")
    src_sub.add_parser("check", help="run the extractor chain on a page URL once and show "
                       "what each extractor finds", add_help=False)
    for name in SERVICES:
        sub.add_parser(name, help=f"run the {name} alone (as `python -m services.{name}`)",
                       add_help=False)
    return p


def _status(settings: Settings) -> int:
    info = read_runtime(settings.data_path)
    if info is None:
        print(f"Slipstream is not running on data folder {settings.data_path}")
        return 1
    print(f"Slipstream running since {info.started_at:%Y-%m-%d %H:%M:%S} UTC (pid {info.pid})")
    print(f"  nats     {info.nats_url}\n  web UI   {info.gateway_url}\n  relay    {info.relay_url}")
    points = {"gateway": info.gateway_url, "relay": info.relay_url,
              "scheduler": f"http://{settings.scheduler.host}:{settings.scheduler.port}",
              "extractor": f"http://{settings.extractor.host}:{settings.extractor.port}"}
    with httpx.Client(timeout=2.0) as client:
        for name, base in points.items():
            try:
                r = client.get(f"{base}/readyz")
                word = "ready" if r.status_code == 200 else f"not ready: {r.text}"
            except httpx.HTTPError as exc:
                word = f"unreachable ({type(exc).__name__})"
            print(f"  {name:<9} {word}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``slipstream`` command."""
    args, rest = _parser().parse_known_args(argv)
    if args.command in SERVICES:
        extra = ["--config", args.config] if args.config else []
        cmd = python_module(f"services.{args.command}") + extra + rest
        # The service replaces this process, so signals reach it directly.
        os.execv(cmd[0], cmd)  # noqa: S606
    if args.command == "sources":
        extra = ["--config", args.config] if args.config else []
        cmd = [*python_module("services.extractor"), "check", *rest, *extra]
        os.execv(cmd[0], cmd)  # noqa: S606
    if rest:
        _parser().error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"slipstream: {exc}", file=sys.stderr)
        return 2
    if args.command == "up":
        return up(settings, args.config)
    if args.command == "calendar":
        return _calendar(settings, args.season)
    return _status(settings)


def _calendar(settings: Settings, season: int | None) -> int:
    try:
        calendar, origin = find_calendar(settings)
    except CalendarError as exc:
        print(f"slipstream calendar: {exc}", file=sys.stderr)
        return 1
    if season is not None and season != calendar.season:
        print(f"slipstream calendar: no calendar for {season} here (this one is "
              f"{calendar.season}, from {origin})", file=sys.stderr)
        return 1
    print(render(calendar, datetime.now(UTC), color=sys.stdout.isatty()))
    print(f"(from {origin})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
