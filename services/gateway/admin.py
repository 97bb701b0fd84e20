"""The admin API (``/api/admin/...``): the sources with how each is doing; add, edit, enable,
disable, remove, check now. Behind the admin tokens (``gateway.admin_tokens``, or the one kept
in the data folder), never the viewers' token. Header and cookie values go in, never out: the
sources are shown with header and cookie names only, and an edit that leaves a value out
(``null``) keeps the saved one.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from litestar import Request, Router, delete, get, patch, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    ServiceUnavailableException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, JSONBody
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.js.kv import KeyValue

from shared import logs, subjects, topology
from shared.codec import PayloadError, decode, encode
from shared.kvmirror import KvMirror
from shared.relay_urls import kept_secret
from shared.sessions import SessionKind
from shared.settings import Settings
from shared.sourceadmin import (
    SourceAdmin,
    SourceConflictError,
    SourceExistsError,
    SourceNotFoundError,
)
from shared.sources import (
    CheckReply,
    CheckRequest,
    SourceChanged,
    SourceError,
    SourceRecord,
    SourceStats,
    SourceStatsView,
    SourceView,
    parse,
    stats_view,
    view,
)
from shared.streams import StreamRecord
from shared.tasks import background

log = logs.get(__name__)

#: The name the admin token kept in the data folder goes by.
KEPT_NAME: Final = "admin"
ADMIN_TOKEN_FILE: Final = "admin.token"  # noqa: S105 - a file name
CHECK_TIMEOUT: Final = 120.0
HeaderMap = dict[str, str]


def admin_tokens(settings: Settings) -> dict[str, str]:
    """Admin tokens by name: the configured ones, else one kept in the data folder."""
    if settings.gateway.admin_tokens:
        return dict(settings.gateway.admin_tokens)
    token = kept_secret(settings.data_path / ADMIN_TOKEN_FILE, "to make a new admin token")
    return {KEPT_NAME: token.decode()}


def admin_name(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The name of the admin token the request carries (``Authorization: Bearer``), or None."""
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    given = value.strip().encode()
    tokens: dict[str, str] = connection.app.state.admin_tokens
    found = None
    for name, token in tokens.items():  # compare with every one: no early exit on a match
        if hmac.compare_digest(given, token.encode()):
            found = name
    return found


def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if admin_name(connection) is None:
        raise NotAuthorizedException("the admin API needs an admin token: Authorization: Bearer")


@dataclass
class Admin:
    """What the admin handlers read and write through."""

    sources: KvMirror[SourceRecord]
    stats: KvMirror[SourceStats]
    streams: KvMirror[StreamRecord]
    client: Client | None = None
    kv: KeyValue | None = None

    def link(self) -> tuple[Client, SourceAdmin]:
        if self.client is None or self.kv is None or not self.client.is_connected:
            raise ServiceUnavailableException("not connected to NATS yet; try again shortly")
        return self.client, SourceAdmin(self.client.jetstream(), self.kv)


class AdminSource(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the admin page: the source (no secret value) and how it is doing."""

    source: SourceView
    stats: SourceStatsView


class NewSource(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A source to add (values of headers and cookies go in and are never shown again)."""

    id: str
    url: str
    name: str = ""
    kinds: list[SessionKind] = msgspec.field(default_factory=list)
    extractor: str = "auto"
    headers: HeaderMap = msgspec.field(default_factory=dict)
    cookies: HeaderMap = msgspec.field(default_factory=dict)
    user_agent: str = ""
    priority: int = 0
    refresh: float = 600.0
    max_concurrent: int = 2
    enabled: bool = True


class SourcePatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; in ``headers``/``cookies`` (the full set) ``null`` keeps a saved value."""

    url: str | msgspec.UnsetType = msgspec.UNSET
    name: str | msgspec.UnsetType = msgspec.UNSET
    kinds: list[SessionKind] | msgspec.UnsetType = msgspec.UNSET
    extractor: str | msgspec.UnsetType = msgspec.UNSET
    headers: dict[str, str | None] | msgspec.UnsetType = msgspec.UNSET
    cookies: dict[str, str | None] | msgspec.UnsetType = msgspec.UNSET
    user_agent: str | msgspec.UnsetType = msgspec.UNSET
    priority: int | msgspec.UnsetType = msgspec.UNSET
    refresh: float | msgspec.UnsetType = msgspec.UNSET
    max_concurrent: int | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET

    def fields(self) -> dict[str, Any]:
        return {f: v for f in self.__struct_fields__
                if (v := getattr(self, f)) is not msgspec.UNSET}


class Whoami(msgspec.Struct, frozen=True, kw_only=True):
    name: str


def _who(request: Request[Any, Any, Any]) -> str:
    return f"admin:{admin_name(request) or '?'}"


def _fail(exc: SourceError) -> HTTPException:
    if isinstance(exc, SourceNotFoundError):
        return NotFoundException(str(exc))
    if isinstance(exc, SourceExistsError | SourceConflictError):
        return HTTPException(status_code=409, detail=str(exc))
    return ClientException(str(exc))


def rows(admin: Admin) -> list[AdminSource]:
    """Every source with its statistics, by priority then id."""
    counts: dict[str, int] = {}
    for record, _ in admin.streams.values.values():
        counts[record.source_id] = counts.get(record.source_id, 0) + 1
    out = [AdminSource(source=view(record, revision),
                       stats=stats_view(key, admin.stats.get(key), counts.get(key, 0)))
           for key, (record, revision) in admin.sources.values.items()]
    return sorted(out, key=lambda r: (-r.source.priority, r.source.id))


@get("/whoami", sync_to_thread=False)
def whoami(request: Request[Any, Any, Any]) -> Whoami:
    """The admin token's name."""
    return Whoami(name=admin_name(request) or "")


@get("/sources", sync_to_thread=False)
def list_sources(state: State) -> list[AdminSource]:
    """Every source, with streams now, success rate, last extractor, time to resolve, last
    error (redacted)."""
    return rows(state.admin)


async def _do(request: Request[Any, Any, Any], action: str, source_id: str,
              body: dict[str, Any] | None = None) -> SourceChanged:
    admin: Admin = request.app.state.admin
    _, ops = admin.link()
    who = _who(request)
    try:
        if action == "add":
            event = await ops.add(parse(body or {}), who)
        elif action == "edit":
            event = await ops.edit(source_id, body or {}, who)
        elif action in ("enable", "disable"):
            event = await ops.set_enabled(source_id, action == "enable", who)
        else:
            event = await ops.remove(source_id, who)
    except SourceError as exc:
        raise _fail(exc) from exc
    except subjects.InvalidTokenError as exc:
        raise NotFoundException(f"no source {source_id!r}") from exc
    except (NatsError, TimeoutError) as exc:
        raise ServiceUnavailableException(f"NATS: {type(exc).__name__}") from exc
    log.info("source changed", source=event.source_id, action=event.action.value, who=who,
             changed=event.changed)
    return event


@post("/sources", status_code=201)
async def add_source(request: Request[Any, Any, Any], data: JSONBody[NewSource]) -> SourceChanged:
    """Add a source; its jobs start on every extractor within seconds."""
    return await _do(request, "add", data.id, msgspec.structs.asdict(data))


@patch("/sources/{source_id:str}")
async def edit_source(request: Request[Any, Any, Any], source_id: FromPath[str],
                      data: JSONBody[SourcePatch]) -> SourceChanged:
    """Change a source; its streams are resolved again when what is resolved changed."""
    return await _do(request, "edit", source_id, data.fields())


@post("/sources/{source_id:str}/enable", status_code=200)
async def enable_source(request: Request[Any, Any, Any], source_id: FromPath[str]) -> SourceChanged:
    """Enable a source."""
    return await _do(request, "enable", source_id)


@post("/sources/{source_id:str}/disable", status_code=200)
async def disable_source(request: Request[Any, Any, Any],
                         source_id: FromPath[str]) -> SourceChanged:
    """Disable a source: its streams go."""
    return await _do(request, "disable", source_id)


@delete("/sources/{source_id:str}", status_code=200)
async def remove_source(request: Request[Any, Any, Any], source_id: FromPath[str]) -> SourceChanged:
    """Remove a source: its streams go."""
    return await _do(request, "remove", source_id)


@post("/sources/{source_id:str}/check", status_code=200)
async def check_source(state: State, source_id: FromPath[str]) -> CheckReply:
    """Run every extractor on the source now (on an extractor): each candidate and its verdict."""
    admin: Admin = state.admin
    client, _ = admin.link()
    try:
        subjects.check_token(source_id)
    except subjects.InvalidTokenError as exc:
        raise NotFoundException(f"no source {source_id!r}") from exc
    try:
        msg = await client.request(subjects.EXTRACTOR_CHECK,
                                   encode(CheckRequest(source_id=source_id)),
                                   timeout=CHECK_TIMEOUT)
    except NoRespondersError as exc:
        raise ServiceUnavailableException("no extractor is running to check it") from exc
    except (NatsError, TimeoutError) as exc:
        raise ServiceUnavailableException(f"the check did not answer: {type(exc).__name__}") from exc
    try:
        reply: CheckReply = decode(msg.data, CheckReply)
    except PayloadError as exc:
        raise ServiceUnavailableException("the extractor answered something unreadable") from exc
    if reply.error.startswith("no source"):
        raise NotFoundException(reply.error)
    return reply


def router() -> Router:
    """``/api/admin``: every handler behind the admin guard."""
    return Router(path="/api/admin", guards=[require_admin],
                  route_handlers=[whoami, list_sources, add_source, edit_source, enable_source,
                                  disable_source, remove_source, check_source])


async def follow(admin: Admin, client: Client) -> None:
    """Follow the ``sources`` and ``source-stats`` buckets until cancelled."""
    js = client.jetstream()
    admin.client = client
    admin.kv = await topology.sources_kv(js)
    stats = admin.stats.follow_forever(js, topology.SOURCE_STATS_BUCKET)
    async with background(stats, "source-stats", critical=True):
        await admin.sources.follow_forever(js, topology.SOURCES_BUCKET)

