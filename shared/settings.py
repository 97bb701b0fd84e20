"""Typed settings for every service, from ``SLIPSTREAM_*`` variables and an optional TOML file.

One root :class:`Settings` with a section per service; each service's app factory receives its
section plus the common parts. Precedence: defaults < TOML file < environment. Every bad value
and every unknown key is collected, so one :class:`SettingsError` lists all of them at once.

Environment names are ``SLIPSTREAM_<FIELD>`` for top-level fields (``SLIPSTREAM_DATA_DIR``) and
``SLIPSTREAM_<SECTION>_<FIELD>`` for the rest (``SLIPSTREAM_RELAY_PORT``). ``NATS_URL`` is read as
a fallback for ``SLIPSTREAM_NATS_URL``. Lists are JSON (``["a", "b"]``) or comma-separated.
"""

from __future__ import annotations

import os
import string
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

import msgspec
import platformdirs

from shared.sessions import SessionKind
from shared.subjects import TOKEN_PATTERN

ENV_PREFIX: Final = "SLIPSTREAM_"
#: Variables with our prefix that are not settings (read by the CLI and the tests).
_NOT_SETTINGS: Final = frozenset({"SLIPSTREAM_CONFIG", "SLIPSTREAM_TEST_NATS_URL",
                                  "SLIPSTREAM_TEST_REDIS_URL", "SLIPSTREAM_CHILD"})
_SECRET_WORDS: Final = ("password", "secret", "token", "key")

Port = Annotated[int, msgspec.Meta(ge=1, le=65535, description="a TCP port from 1 to 65535")]
Host = Annotated[str, msgspec.Meta(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:_-]+$",
                                   description="a host name or IP address")]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=86400, description="seconds, more than 0")]
NatsUrl = Annotated[str, msgspec.Meta(
    pattern=r"^(nats|tls|ws|wss)://[^\s/,]+/?(,\s*(nats|tls|ws|wss)://[^\s/,]+/?)*$",
    description="a NATS URL such as nats://127.0.0.1:4222 (several separated by commas)")]
RedisUrl = Annotated[str, msgspec.Meta(
    pattern=r"^(redis|rediss|unix)://\S+$",
    description="a Redis URL such as redis://127.0.0.1:6379/0")]
PublicUrl = Annotated[str, msgspec.Meta(
    pattern=r"^https?://[^\s/]+(/\S*)?$",
    description="an http(s) URL such as http://127.0.0.1:8081")]


NatsUser = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$",
                                       description="a NATS user name (letters, digits, . _ -)")]


class NatsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where NATS is; without ``url`` the embedded server of ``slipstream up`` is used."""

    url: NatsUrl | None = None
    #: The NATS user this process connects as (one per role: scheduler, extractor, relay,
    #: gateway, ops); ``slipstream up`` gives each child its own.
    user: NatsUser | None = None
    #: The user's password (prefer ``password_file``: environments are easier to leak).
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=512,
                                          description="1 to 512 characters")] | None = None
    #: A file holding the user's password (a Kubernetes or compose secret, or what
    #: ``slipstream up`` generated); it must not be readable by others.
    password_file: str | None = None
    #: TLS for client connections: the CA that signed the servers' certificates, and this
    #: client's certificate and key when the servers verify clients.
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    #: JetStream replicas for streams and buckets (3 on a 3-node cluster).
    replicas: Annotated[int, msgspec.Meta(ge=1, le=5, description="1 to 5")] = 1
    connect_timeout: Seconds = 5.0
    #: Seconds between reconnect attempts; attempts never stop.
    reconnect_wait: Seconds = 1.0

    @property
    def servers(self) -> list[str]:
        """The configured server URLs, in order."""
        return [u.strip() for u in (self.url or "").split(",") if u.strip()]

    def __post_init__(self) -> None:
        if self.password is not None and self.password_file is not None:
            raise ValueError("nats: set password or password_file, not both")
        if (self.password is not None or self.password_file is not None) and self.user is None:
            raise ValueError("nats: a password needs nats.user")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("nats: tls_cert and tls_key go together")


class RedisSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Optional Redis for caches shared by replicas; without ``url`` caches are in memory."""

    url: RedisUrl | None = None
    #: Every Redis call gives up after this long, so a dead Redis never hangs a request.
    timeout: Seconds = 0.5


class SchedulerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The scheduler: calendar source and its health port."""

    host: Host = "127.0.0.1"
    port: Port = 8082
    #: A calendar file (offline use, the demo); without it FastF1 is the source.
    calendar: str | None = None
    #: The season to follow; the current year (UTC) when not set.
    season: Annotated[int, msgspec.Meta(ge=1950, le=2999, description="a year")] | None = None
    #: Seconds before a session's start when it becomes ``upcoming`` (extraction begins).
    lead_time: Seconds = 1800.0
    #: Seconds after a session's expected end before it is ``ended``.
    grace: Seconds = 900.0
    #: Expected duration in seconds per session kind, overriding the defaults (race 7200, ...).
    durations: dict[SessionKind, Seconds] = msgspec.field(default_factory=dict)
    #: Seconds between calendar re-syncs.
    resync_interval: Seconds = 86400.0


class ExtractorSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The extractor: its health port, timing and the demo sources."""

    host: Host = "127.0.0.1"
    port: Port = 8083
    #: Add the demo origin's pages as sources (``slipstream up`` sets it with the demo).
    demo_sources: bool = False
    #: Base URL of the demo origin for those sources.
    demo_url: PublicUrl = "http://127.0.0.1:8090"
    #: Seconds between health probes of a live stream.
    probe_interval: Seconds = 10.0
    #: Wall-clock limit in seconds for one extraction by one extractor.
    deadline: Seconds = 20.0
    #: Chromium for the browser extractor (Debian's package installs it here).
    chromium: str = "/usr/bin/chromium"


#: A subject token, and short: at most 32 characters.
SourceId = Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN, max_length=32,
                                       description="a short id: lower-case letters, digits, - and _")]
ExtractorName = Literal["auto", "http", "ytdlp", "streamlink", "browser"]
HeaderName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,64}$")]
HeaderValue = Annotated[str, msgspec.Meta(pattern=r"^[^\r\n\x00]{0,2048}$")]
TEMPLATE_FIELDS: Final = frozenset({"key", "season", "round", "event", "kind", "country", "circuit"})


class SourceSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One operator-configured source page (a ``[[sources]]`` table)."""

    id: SourceId
    url: str
    name: str = ""
    #: Session kinds this source serves; every kind when empty.
    kinds: list[SessionKind] = msgspec.field(default_factory=list)
    extractor: ExtractorName = "auto"
    headers: dict[HeaderName, HeaderValue] = msgspec.field(default_factory=dict)
    cookies: dict[HeaderName, HeaderValue] = msgspec.field(default_factory=dict)
    #: The User-Agent to present to this source's pages and streams (a current desktop
    #: browser's when empty; never a library's).
    user_agent: Annotated[str, msgspec.Meta(max_length=512, pattern=r"^[^\r\n\x00]*$",
                                            description="one line, at most 512 characters")] = ""
    #: Higher first, in lists and players.
    priority: int = 0
    #: Seconds after which a resolved URL is resolved again (when it carries no expiry itself).
    refresh: Seconds = 600.0
    #: Extractions of this source running at once, across all extractor replicas.
    max_concurrent: Annotated[int, msgspec.Meta(ge=1, le=64, description="1 to 64")] = 2
    #: A disabled source is kept (in the ``sources`` bucket) but gets no jobs.
    enabled: bool = True

    def __post_init__(self) -> None:
        fields = {f for _, f, _, _ in string.Formatter().parse(self.url) if f is not None}
        unknown = fields - TEMPLATE_FIELDS
        if unknown:
            raise ValueError(f"source {self.id}: url uses unknown fields {sorted(unknown)}; "
                             f"known: {sorted(TEMPLATE_FIELDS)}")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"source {self.id}: url must start with http:// or https://")


class EgressSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Private hosts the relay and extractor may nevertheless reach."""

    allow: list[Annotated[str, msgspec.Meta(pattern=r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$",
                                             description="host:port")]] = msgspec.field(
        default_factory=list)


class RelaySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The relay: where it listens and the address viewers reach it at."""

    host: Host = "127.0.0.1"
    port: Port = 8081
    #: Base URL viewers use for the relay; derived from host and port when not set.
    public_url: PublicUrl | None = None
    #: Secret that signs relay URLs (shared by relays and gateways); kept in the data folder
    #: (``relay.secret``, made on first use) when not set.
    secret: Annotated[str, msgspec.Meta(min_length=16, description="at least 16 characters")] | None = None
    #: Seconds a playback URL stays valid.
    url_ttl: Seconds = 21600.0
    #: Bytes of segments kept in memory for all viewers.
    cache_bytes: Annotated[int, msgspec.Meta(ge=0, description="bytes")] = 256 * 1024 * 1024
    #: Answer segments of streams that need no credentials with a redirect to the upstream
    #: (saves the relay's bandwidth, but viewers then see upstream URLs and fetch them
    #: themselves: no shared fetch). Off: every segment goes through the relay.
    redirect_public_segments: bool = False
    #: Keys that sign channel URLs, ``id:secret`` pairs separated by commas, oldest first (the
    #: last signs, all verify); kept in the data folder (``channel.keys``, made on first use,
    #: changed by ``slipstream channels rotate|revoke``) when not set.
    channel_keys: Annotated[str, msgspec.Meta(
        min_length=18, pattern=r"^[^\s]+$",
        description="id:secret pairs separated by commas, secrets of at least 16 characters",
    )] | None = None


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The gateway: web UI, REST API and WebSocket feed."""

    host: Host = "127.0.0.1"
    port: Port = 8080
    #: Origins allowed to open the WebSocket feed; the gateway's own origin is always allowed.
    allowed_origins: list[PublicUrl] = msgspec.field(default_factory=list)
    #: Seconds between pings to each WebSocket client; one that has not answered by the next
    #: ping is dropped.
    ping_interval: Seconds = 20.0
    #: Seconds a stream lost behind the system's back (its KV bucket deleted or purged) is shown
    #: as being re-resolved, without a playback URL, before it is taken as gone.
    reresolve_window: Seconds = 180.0
    #: Folder of the built web UI; the checkout's ``ui/dist`` when not set.
    ui_dir: str | None = None
    #: When set, the feed, the REST API and the exports need it: ``Authorization: Bearer`` or
    #: ``?token=`` (the web UI asks for it once and keeps it in the browser).
    token: Annotated[str, msgspec.Meta(min_length=16, description="at least 16 characters")] | None = None
    #: Tokens of the admin page and API (``/api/admin/...``), by name (the name is who the
    #: change events say made a change): ``{"alice": "<token>"}``. The viewers' ``token`` is
    #: never enough. When empty, one named ``admin`` is kept in the data folder
    #: (``admin.token``, made on first use).
    admin_tokens: dict[Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN, max_length=32)],
                       Annotated[str, msgspec.Meta(min_length=16)]] = msgspec.field(
        default_factory=dict)


class DemoSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The built-in demo origin: a live HLS stream and source pages, all on loopback."""

    enabled: bool = True
    host: Host = "127.0.0.1"
    port: Port = 8090
    #: Also serve the gallery of hard pages under ``/g/`` (one page per pattern real embed
    #: sites use); off by default so the demo stays quick.
    gallery: bool = False
    #: Also offer the demo's delayed feeds as sources (the same content 0, 6 and 12 s behind
    #: live, one without program date-times: ``/pages/feed/...``) to watch in step; off by
    #: default so the demo stays quick.
    feeds: bool = False


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every setting of Slipstream."""

    #: Where the embedded NATS store, caches and the runtime file live.
    data_dir: str = msgspec.field(default_factory=lambda: platformdirs.user_data_dir("slipstream"))
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    scheduler: SchedulerSettings = msgspec.field(default_factory=SchedulerSettings)
    extractor: ExtractorSettings = msgspec.field(default_factory=ExtractorSettings)
    relay: RelaySettings = msgspec.field(default_factory=RelaySettings)
    gateway: GatewaySettings = msgspec.field(default_factory=GatewaySettings)
    demo: DemoSettings = msgspec.field(default_factory=DemoSettings)
    sources: list[SourceSettings] = msgspec.field(default_factory=list)
    egress: EgressSettings = msgspec.field(default_factory=EgressSettings)

    def __post_init__(self) -> None:
        ids = [s.id for s in self.sources]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"sources: ids must be unique, repeated: {', '.join(dupes)}")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def relay_public_url(self) -> str:
        if self.relay.public_url:
            return self.relay.public_url.rstrip("/")
        return f"http://{_url_host(self.relay.host)}:{self.relay.port}"

    @property
    def demo_url(self) -> str:
        return f"http://{_url_host(self.demo.host)}:{self.demo.port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{_url_host(self.gateway.host)}:{self.gateway.port}"

    @property
    def ui_origins(self) -> frozenset[str]:
        """Origins whose pages may open the feed and play through the relay: the gateway's own
        (under each loopback name when it listens on loopback) and the configured ones."""
        own = {self.gateway_url}
        if self.gateway.host in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::"):
            own |= {f"http://{name}:{self.gateway.port}" for name in ("127.0.0.1", "localhost", "[::1]")}
        return frozenset(own | set(self.gateway.allowed_origins))


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class SettingsError(Exception):
    """Settings were invalid; ``problems`` lists every one of them, readable as they are."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        where = f" ({source})" if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid settings{where}:\n{lines}")


_SECTIONS: Final[dict[str, type[msgspec.Struct]]] = {
    f.name: f.type
    for f in msgspec.structs.fields(Settings)
    if isinstance(f.type, type) and issubclass(f.type, msgspec.Struct)
}


def _redact(name: str, value: object) -> str:
    if any(word in name for word in _SECRET_WORDS):
        return "'***'"
    if isinstance(value, str) and "@" in value and "://" in value:
        parts = urlsplit(value)
        if parts.password or parts.username:
            netloc = parts.netloc.rsplit("@", 1)[1]
            return repr(parts._replace(netloc=f"***@{netloc}").geturl())
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(tp: Any) -> str:
    for arg in typing.get_args(tp):
        desc = getattr(arg, "description", None)
        if desc:
            return str(desc)
        inner = _describe(arg)
        if inner:
            return inner
    return ""


def _env_value(raw: str, tp: Any) -> Any:
    """Turn an environment string into what the field's type expects."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _env_value(raw, typing.get_args(tp)[0])
    if origin is dict:
        return msgspec.json.decode(raw.strip())
    if origin is list:
        stripped = raw.strip()
        if stripped.startswith("["):
            return msgspec.json.decode(stripped)
        return [item.strip() for item in stripped.split(",") if item.strip()]
    if tp is bool or (origin is typing.Union and bool in typing.get_args(tp)):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    if raw == "" and origin in (typing.Union, types.UnionType):
        return None
    return raw


def _convert_fields(cls: type[msgspec.Struct], raw: Mapping[str, Any], where: str,
                    problems: list[str]) -> dict[str, Any]:
    fields = {f.name: f for f in msgspec.structs.fields(cls)}
    good: dict[str, Any] = {}
    for name, value in raw.items():
        label = f"{where}{name}"
        field = fields.get(name)
        if field is None:
            known = ", ".join(sorted(fields))
            problems.append(f"{label}: unknown setting (known here: {known})")
            continue
        if name in _SECTIONS and cls is Settings:
            if not isinstance(value, Mapping):
                problems.append(f"{label}: must be a table of settings, got {_redact(name, value)}")
                continue
            section = _convert_fields(_SECTIONS[name], value, f"{label}.", problems)
            good[name] = section
            continue
        item_type = _struct_list_item(field.type)
        if item_type is not None and isinstance(value, list):
            good[name] = _convert_items(item_type, value, label, problems)
            continue
        try:
            good[name] = msgspec.convert(value, type=field.type, strict=False)
        except msgspec.ValidationError as exc:
            expected = _describe(field.type)
            hint = f"must be {expected}" if expected else str(exc)
            problems.append(f"{label} = {_redact(name, value)}: {hint}")
    return good


def _struct_list_item(tp: Any) -> type[msgspec.Struct] | None:
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        if isinstance(item, type) and issubclass(item, msgspec.Struct):
            return item
    return None


def _convert_items(item_type: type[msgspec.Struct], items: list[Any], label: str,
                   problems: list[str]) -> list[Any]:
    """Convert a list of tables one by one, so each bad entry is reported with its own index."""
    out = []
    for index, item in enumerate(items):
        where = f"{label}[{index}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: must be a table")
            continue
        fields = _convert_fields(item_type, item, f"{where}.", problems)
        try:
            out.append(item_type(**fields))
        except (TypeError, ValueError) as exc:
            missing = {f.name for f in msgspec.structs.fields(item_type)
                       if f.required} - set(item)
            problems.append(f"{where}: missing {', '.join(sorted(missing))}" if missing
                            else f"{where}: {exc}")
    return out


def _from_env(env: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    top_fields = {f.name: f for f in msgspec.structs.fields(Settings)}
    out: dict[str, Any] = {}
    items = dict(env)
    if "NATS_URL" in items and "SLIPSTREAM_NATS_URL" not in items:
        items["SLIPSTREAM_NATS_URL"] = items["NATS_URL"]
    for var, raw in sorted(items.items()):
        if not var.startswith(ENV_PREFIX) or var in _NOT_SETTINGS:
            continue
        name = var[len(ENV_PREFIX):].lower()
        section, _, field_name = name.partition("_")
        if section in _SECTIONS and field_name:
            fields = {f.name: f for f in msgspec.structs.fields(_SECTIONS[section])}
            if field_name not in fields:
                problems.append(f"{var}: unknown setting (known for {section}: "
                                f"{', '.join(sorted(fields))})")
                continue
            try:
                value = _env_value(raw, fields[field_name].type)
            except msgspec.DecodeError as exc:
                problems.append(f"{var}: not valid JSON ({exc})")
                continue
            out.setdefault(section, {})[field_name] = value
        elif name in top_fields and name not in _SECTIONS:
            out[name] = _env_value(raw, top_fields[name].type)
        else:
            problems.append(f"{var}: unknown setting")
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load_settings(config: str | Path | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Load settings from defaults, the TOML file (``config`` or ``SLIPSTREAM_CONFIG``) and env.

    Raises :class:`SettingsError` listing every problem found.
    """
    env = os.environ if env is None else env
    path = config if config is not None else env.get("SLIPSTREAM_CONFIG") or None
    problems: list[str] = []
    raw: dict[str, Any] = {}
    source = ""
    if path is not None:
        source = str(path)
        try:
            raw = tomllib.loads(Path(path).expanduser().read_text(encoding="utf-8"))
        except FileNotFoundError:
            problems.append(f"config file {path}: not found")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"config file {path}: cannot be read ({exc})")
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"config file {path}: not valid TOML ({exc})")
    raw = _merge(raw, _from_env(env, problems))
    converted = _convert_fields(Settings, raw, "", problems)
    if problems:
        raise SettingsError(problems, source)
    try:
        sections = {
            name: value if not isinstance(value, dict) else _SECTIONS[name](**value)
            for name, value in converted.items()
        }
        return Settings(**typing.cast(dict[str, Any], sections))
    except (TypeError, ValueError) as exc:  # cross-field checks in __post_init__
        raise SettingsError([str(exc)], source) from exc
