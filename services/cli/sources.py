"""``slipstream sources``: list, show, add, edit, enable, disable, remove, check and count the
sources in the ``sources`` bucket, on the NATS of a running ``slipstream up`` (found as
``replay`` finds it) or the configured one. Every change is a ``SourceChanged`` event naming the
CLI's user. Header and cookie values are never printed.

``check URL`` runs the extractor chain here, on any page (as before); ``check ID`` asks a
running extractor to check a configured source with its own headers and cookies.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from typing import Any, Final

import msgspec
import nats
import nats.errors
from nats.aio.client import Client

from shared import bus, subjects, topology
from shared.access import CredentialsError
from shared.codec import PayloadError, decode, encode
from shared.kv import keys as kv_keys
from shared.runtime import NatsNotFoundError, nats_servers, ops_nats
from shared.settings import Settings
from shared.sourceadmin import SourceAdmin, read_stats
from shared.sources import (
    CheckReply,
    CheckRequest,
    SourceChanged,
    SourceError,
    SourceView,
    parse,
    stats_view,
    view,
)

#: Seconds a check may take: every extractor of the chain, each within its deadline.
CHECK_TIMEOUT: Final = 120.0
COMMANDS: Final = ("list", "show", "add", "edit", "enable", "disable", "rm", "check", "stats")
_json = msgspec.json.Encoder()


def who() -> str:
    """Who the CLI's changes are by."""
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "cli"


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    return name.strip(), value


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="a readable name")
    p.add_argument("--extractor", help="auto (default), http, ytdlp, streamlink or browser")
    p.add_argument("--header", action="append", type=_pair, default=[], metavar="NAME=VALUE",
                   help="a header for its pages and streams (repeatable)")
    p.add_argument("--cookie", action="append", type=_pair, default=[], metavar="NAME=VALUE",
                   help="a cookie for its pages and streams (repeatable)")
    p.add_argument("--priority", type=int, help="higher first")
    p.add_argument("--user-agent", dest="user_agent", help="the User-Agent to present")
    p.add_argument("--refresh", type=float, help="seconds before a resolved URL is resolved again")
    p.add_argument("--concurrency", type=int, dest="max_concurrent",
                   help="extractions of it at once, across replicas")
    p.add_argument("--kind", action="append", dest="kinds", metavar="KIND",
                   help="a session kind it serves (repeatable; every kind when none)")


def add_parser(sub: Any) -> None:
    """The ``sources`` command and its sub-commands."""
    src = sub.add_parser("sources", help="list, add, edit, enable, disable, remove, check and "
                         "count stream sources (live, on every extractor)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="JSON output")
    cmds = src.add_subparsers(dest="sources_command", required=True, metavar="COMMAND")

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = cmds.add_parser(name, parents=[common], **kwargs)
        return parser

    command("list", help="every source")
    command("show", help="one source").add_argument("id")
    add = command("add", help="add a source (its jobs start within seconds)")
    add.add_argument("id")
    add.add_argument("url", help="page URL; may use {key} {season} {round} {event} {kind} "
                     "{country} {circuit}")
    add.add_argument("--disabled", action="store_true", help="add it disabled")
    _options(add)
    edit = command("edit", help="change a source (its streams are resolved again)")
    edit.add_argument("id")
    edit.add_argument("--url")
    edit.add_argument("--remove-header", action="append", default=[], metavar="NAME")
    edit.add_argument("--remove-cookie", action="append", default=[], metavar="NAME")
    _options(edit)
    command("enable", help="enable a source").add_argument("id")
    command("disable", help="disable a source (its streams go)").add_argument("id")
    command("rm", help="remove a source (its streams go)").add_argument("id")
    cmds.add_parser("check", help="check ID: ask an extractor to run a source now; check URL: "
                    "run the extractor chain here on a page (--extractor NAME)", add_help=False)
    command("stats", help="how sources have been doing").add_argument("id", nargs="?")


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in ("url", "name", "extractor", "priority", "user_agent", "refresh",
                 "max_concurrent", "kinds"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    return fields


def edit_patch(args: argparse.Namespace, header_names: Sequence[str],
               cookie_names: Sequence[str]) -> dict[str, Any]:
    """The patch an ``edit`` makes: saved headers and cookies are kept (``None``) unless given
    again or removed."""
    patch = _fields(args)
    if args.header or args.remove_header:
        headers: dict[str, str | None] = dict.fromkeys(header_names)
        headers.update(dict(args.header))
        patch["headers"] = {k: v for k, v in headers.items() if k not in args.remove_header}
    if args.cookie or args.remove_cookie:
        cookies: dict[str, str | None] = dict.fromkeys(cookie_names)
        cookies.update(dict(args.cookie))
        patch["cookies"] = {k: v for k, v in cookies.items() if k not in args.remove_cookie}
    return patch


def _row(v: SourceView) -> str:
    state = "on " if v.enabled else "off"
    needs = ",".join([*v.header_names, *(f"cookie:{c}" for c in v.cookie_names)]) or "-"
    return f"{v.id:<20} {state} {v.priority:>4} {v.extractor:<10} {needs:<24} {v.url}"


def _print_view(v: SourceView) -> None:
    print(f"{v.id}: {v.name or v.id} ({'enabled' if v.enabled else 'disabled'})")
    print(f"  url          {v.url}")
    print(f"  extractor    {v.extractor}   priority {v.priority}   refresh {v.refresh:.0f} s   "
          f"concurrency {v.max_concurrent}")
    print(f"  kinds        {', '.join(v.kinds) or 'every kind'}")
    print(f"  headers      {', '.join(v.header_names) or '-'} (values hidden)")
    print(f"  cookies      {', '.join(v.cookie_names) or '-'} (values hidden)")
    if v.user_agent:
        print(f"  user agent   {v.user_agent}")
    by = f" by {v.updated_by}" if v.updated_by else ""
    when = f" at {v.updated_at:%Y-%m-%d %H:%M:%S} UTC" if v.updated_at else ""
    print(f"  changed      revision {v.revision}{by}{when}{' (seeded from file)' if v.from_file else ''}")


def _out(value: Any, as_json: bool, text: str) -> None:
    print(_json.encode(value).decode() if as_json else text)


async def run(nc: Client, args: argparse.Namespace, rest: list[str]) -> int:
    """One ``sources`` command against NATS."""
    js = nc.jetstream()
    admin = SourceAdmin(js, await topology.sources_kv(js))
    command, as_json = args.sources_command, getattr(args, "json", False) or "--json" in rest
    if command == "list":
        records = await admin.all()
        views = [view(*records[k]) for k in sorted(records)]
        if as_json:
            print(_json.encode(views).decode())
        else:
            print(f"{'id':<20} on  {'prio':>4} {'extractor':<10} {'needs':<24} url")
            for v in views:
                print(_row(v))
        return 0
    if command == "show":
        record, revision = await admin.get(args.id)
        shown = view(record, revision)
        if as_json:
            print(_json.encode(shown).decode())
        else:
            _print_view(shown)
        return 0
    if command == "stats":
        return await _stats(js, args.id, as_json)
    if command == "check":
        return await _check(nc, rest, as_json)
    event = await _change(admin, args)
    _out(event, as_json, _said(event))
    return 0


def _said(event: SourceChanged) -> str:
    what = f" ({', '.join(event.changed)})" if event.changed and event.action == "edited" else ""
    return f"{event.source_id}: {event.action.value}{what} at revision {event.revision}"


async def _change(admin: SourceAdmin, args: argparse.Namespace) -> SourceChanged:
    command, by = args.sources_command, who()
    if command == "add":
        fields = _fields(args)
        fields.update(id=args.id, url=args.url, headers=dict(args.header),
                      cookies=dict(args.cookie), enabled=not args.disabled)
        return await admin.add(parse(fields), by)
    if command == "edit":
        record, _ = await admin.get(args.id)
        patch = edit_patch(args, list(record.headers), list(record.cookies))
        if not patch:
            raise SourceError("nothing to change: give --url, --name, --header, ...")
        return await admin.edit(args.id, patch, by)
    if command in ("enable", "disable"):
        return await admin.set_enabled(args.id, command == "enable", by)
    return await admin.remove(args.id, by)


async def _stats(js: Any, source_id: str | None, as_json: bool) -> int:
    stats = await read_stats(await topology.source_stats_kv(js))
    records = await SourceAdmin(js, await topology.sources_kv(js)).all()
    streams = await topology.streams_kv(js)
    ids = [source_id] if source_id else sorted(set(records) | set(stats))
    if source_id and source_id not in records and source_id not in stats:
        raise SourceError(f"no source {source_id!r}")
    rows = []
    for sid in ids:
        now = len(await kv_keys(streams, subjects.source_streams(sid)))
        rows.append(stats_view(sid, stats.get(sid), now))
    if as_json:
        print(_json.encode(rows).decode())
        return 0
    print(f"{'id':<20} {'streams':>7} {'ok/tries':>9} {'rate':>5} {'last ok':<10} "
          f"{'resolve':>8}  last error")
    for r in rows:
        rate = f"{r.success_rate:.0%}" if r.success_rate is not None else "-"
        ms = f"{r.last_resolve_ms:.0f} ms" if r.last_resolve_ms is not None else "-"
        print(f"{r.source_id:<20} {r.streams_now:>7} {f'{r.successes}/{r.attempts}':>9} "
              f"{rate:>5} {r.last_extractor or '-':<10} {ms:>8}  {r.last_error or '-'}")
    return 0


async def _check(nc: Client, rest: list[str], as_json: bool) -> int:
    rest = [a for a in rest if a != "--json"]
    if len(rest) != 1:
        raise SourceError("check ID takes the id of a source (check URL runs here: give a URL)")
    source_id = subjects.check_token(rest[0])
    try:
        msg = await nc.request(subjects.EXTRACTOR_CHECK,
                               encode(CheckRequest(source_id=source_id)), timeout=CHECK_TIMEOUT)
    except nats.errors.NoRespondersError as exc:
        raise SourceError("no extractor is running to check it") from exc
    try:
        reply = decode(msg.data, CheckReply)
    except PayloadError as exc:
        raise SourceError(f"the extractor answered something unreadable: {exc}") from exc
    if reply.error:
        raise SourceError(reply.error)
    if as_json:
        print(_json.encode(reply).decode())
        return 0 if reply.ok else 1
    print(f"{reply.source_id}: {reply.page_url}")
    print(f"{'extractor':<11} {'result':<7} {'time':>8}  detail")
    for a in reply.attempts:
        print(f"{a.extractor:<11} {'ok' if a.ok else 'failed':<7} {a.elapsed_ms:>6.0f}ms  "
              f"{a.detail}")
        for n, c in enumerate(a.candidates, 1):
            via = f" ({c.via})" if c.via else ""
            print(f"{'':<29}candidate {n}{via}: {c.verdict}: {c.why}: {c.url}")
    return 0 if reply.ok else 1


def is_url(rest: Sequence[str]) -> bool:
    """Whether ``check``'s arguments are a page URL (run here) rather than a source id."""
    return any("://" in a for a in rest) or any(a.startswith("-") and a != "--json"
                                                for a in rest)


def main(settings: Settings, args: argparse.Namespace, rest: list[str]) -> int:
    """Run one ``sources`` command; readable errors, exit 1 on failure."""
    async def go() -> int:
        # As the ops user (its password from a running `slipstream up`, or the configured one).
        options = bus.connect_options(nats_servers(settings), "sources", ops_nats(settings))

        async def quiet() -> None:
            return None

        # The output is the command's answer: connection news would only interleave with it
        # (what NATS refuses still goes to stderr, through the error callback's log).
        options.update(connect_timeout=5, max_reconnect_attempts=3, disconnected_cb=quiet,
                       reconnected_cb=quiet, closed_cb=quiet)
        nc = await nats.connect(**options)
        try:
            return await run(nc, args, rest)
        finally:
            await nc.drain()

    try:
        return asyncio.run(go())
    except (SourceError, subjects.InvalidTokenError, NatsNotFoundError, bus.NatsAccessError,
            CredentialsError) as exc:
        if getattr(args, "json", False) or "--json" in rest:
            print(_json.encode({"error": str(exc)}).decode())
        print(f"slipstream sources: {exc}", file=sys.stderr)
        return 1
    except (OSError, nats.errors.Error) as exc:
        print(f"slipstream sources: cannot reach NATS ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        return 1
