"""Entry point of the ``slipstream`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import nats
import nats.errors

from services.cli import channels, sources
from services.cli.replay import SOURCES, ReplayError, parse_duration, replay, tail
from services.cli.supervisor import python_module
from shared import access, bus, logs
from shared.access import CredentialsError
from shared.runtime import NatsNotFoundError, nats_servers, ops_nats, read_runtime
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
    rep = sub.add_parser("replay", help="print JetStream history: session events, jobs, dead "
                         "letters, a stream's KV history")
    rep.add_argument("stream", metavar="STREAM", help=f"one of {', '.join(SOURCES)}")
    when = rep.add_mutually_exclusive_group()
    when.add_argument("--since", metavar="DURATION", help="from this long ago (90s, 15m, 1h, 2d)")
    when.add_argument("--from-seq", type=int, metavar="N", help="from this stream sequence")
    rep.add_argument("--subject", metavar="FILTER",
                     help="subject filter (for streams/sessions: a key filter, 2026.monaco.race.*)")
    rep.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    rep.add_argument("--limit", type=int, metavar="N", help="at most N messages")
    rep.add_argument("--republish", metavar="SUBJECT",
                     help="also publish each message to SUBJECT, for a debugging consumer")
    tl = sub.add_parser("tail", help="follow events live (Ctrl-C stops)")
    tl.add_argument("streams", nargs="*", metavar="STREAM",
                    default=["SESSIONS", "streams", "DEADLETTER", "SOURCE_CHANGES", "CHANNELS"],
                    help="what to follow (default: SESSIONS streams DEADLETTER SOURCE_CHANGES "
                         "CHANNELS)")
    tl.add_argument("--json", action="store_true", help="JSON lines instead of text")
    api = sub.add_parser("asyncapi", help="print the AsyncAPI document of every NATS subject "
                         "and payload (generated from the code)")
    mode = api.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_const", const="write", dest="mode",
                      help="write it to shared/asyncapi.json")
    mode.add_argument("--check", action="store_const", const="check", dest="mode",
                      help="exit 1 if shared/asyncapi.json differs from what the code says")
    acc = sub.add_parser("access", help="print the nats-server authorization block: a user "
                         "per role with its permissions, passwords as $SLIPSTREAM_NATS_<ROLE>_"
                         "PASSWORD variables")
    acc.add_argument("--role", metavar="ROLE", help="print one role's allow-lists as JSON instead")
    acc.add_argument("--helm", action="store_true", help="print the users as the NATS Helm "
                     "chart's config.merge.authorization, in JSON (passwords from container.env)")
    cred = sub.add_parser("credentials", help="make the NATS credentials of a deployment in a "
                          "folder: <role>.password files and nats-auth.conf (never overwritten)")
    cred.add_argument("folder", metavar="DIR")
    chan = sub.add_parser("channels", help="the keys that sign channel URLs (for IPTV players)")
    chan_sub = chan.add_subparsers(dest="channels_command", required=True, metavar="COMMAND")
    chan_sub.add_parser("list", help="show the keys and the live-now channel URL")
    chan_sub.add_parser("rotate", help="add a new signing key (older URLs keep working)")
    rev = chan_sub.add_parser("revoke", help="remove a key: every URL it signed is refused")
    rev.add_argument("key_id", metavar="KEY_ID")
    sources.add_parser(sub)
    for name in SERVICES:
        sub.add_parser(name, help=f"run the {name} alone (as `python -m services.{name}`)",
                       add_help=False)
    return p


def _status(settings: Settings) -> int:
    import httpx  # noqa: PLC0415 - imported by the commands that use it: `sources` starts faster
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
    if args.command == "sources" and args.sources_command == "check" and sources.is_url(rest):
        extra = ["--config", args.config] if args.config else []
        cmd = [*python_module("services.extractor"), "check", *rest, *extra]
        os.execv(cmd[0], cmd)  # noqa: S606
    if rest and not (args.command == "sources" and args.sources_command == "check"):
        _parser().error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "access":
        return _access(args.role, helm=args.helm)
    if args.command == "credentials":
        return _credentials(Path(args.folder))
    if args.command == "asyncapi":
        from services.cli import asyncapi  # noqa: PLC0415 - FastStream only for this command
        return asyncapi.main(args.mode or "print")
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"slipstream: {exc}", file=sys.stderr)
        return 2
    if args.command == "up":
        from services.cli.up import up  # noqa: PLC0415 - see _status

        return up(settings, args.config)
    if args.command == "calendar":
        return _calendar(settings, args.season)
    if args.command in ("replay", "tail"):
        return _history(settings, args)
    if args.command == "channels":
        return channels.run(settings, args.channels_command, getattr(args, "key_id", None))
    if args.command == "sources":
        return sources.main(settings, args, rest)
    return _status(settings)


def _history(settings: Settings, args: argparse.Namespace) -> int:
    """``replay`` and ``tail``: connect to the NATS of a running system (or the configured one)."""
    async def run() -> None:
        options = bus.connect_options(nats_servers(settings), args.command, ops_nats(settings))

        async def quiet() -> None:
            return None

        # A command's output is the history: connection news would only interleave with it
        # (what NATS refuses still goes to stderr, through the error callback's log).
        options.update(connect_timeout=5, max_reconnect_attempts=3, disconnected_cb=quiet,
                       reconnected_cb=quiet, closed_cb=quiet)
        nc = await nats.connect(**options)
        try:
            if args.command == "replay":
                await replay(nc, args.stream, subject=args.subject,
                             since=parse_duration(args.since) if args.since else None,
                             from_seq=args.from_seq, as_json=args.json, republish=args.republish,
                             limit=args.limit)
            else:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                await tail(nc, args.streams, as_json=args.json, stop=stop, on_ready=lambda: print(
                    f"following {' '.join(args.streams)} (Ctrl-C stops)", file=sys.stderr,
                    flush=True))
        finally:
            await nc.drain()

    logs.configure(args.command, "warning", "console")  # to stderr: stdout is the output
    try:
        asyncio.run(run())
    except (ReplayError, NatsNotFoundError, bus.NatsAccessError, CredentialsError) as exc:
        print(f"slipstream {args.command}: {exc}", file=sys.stderr)
        return 1
    except (OSError, nats.errors.Error) as exc:
        print(f"slipstream {args.command}: cannot reach NATS ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        return 1
    return 0


def _credentials(folder: Path) -> int:
    try:
        made = access.write_credentials(folder)
    except (OSError, access.CredentialsError) as exc:
        print(f"slipstream credentials: {exc}", file=sys.stderr)
        return 1
    print("\n".join(str(path) for path in made))
    return 0


def _access(role: str | None, *, helm: bool = False) -> int:
    if helm:
        users = access.users(lambda r: f"<< ${access.password_variable(r)} >>")
        # JSON is YAML: paste it into the values file (or pass it with helm -f).
        print(json.dumps({"config": {"merge": {"authorization": {"users": users}}}}, indent=2))
        return 0
    if role is None:
        sys.stdout.write(access.authorization())
        return 0
    try:
        perms = access.permissions(role)
    except ValueError:
        print(f"slipstream access: unknown role {role!r}; one of: "
              f"{', '.join(r.value for r in access.Role)}", file=sys.stderr)
        return 2
    print(json.dumps({"user": role, "publish": perms.publish, "subscribe": perms.subscribe,
                      "allow_responses": perms.allow_responses}, indent=2))
    return 0


def _calendar(settings: Settings, season: int | None) -> int:
    from services.cli.calendar_table import find_calendar, render  # noqa: PLC0415 - see _status
    from shared.calendar import CalendarError  # noqa: PLC0415

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
