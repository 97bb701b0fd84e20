"""NATS connections: one set of options for nats-py clients and FastStream brokers.

Every client is named (``slipstream-<service>``, shown in NATS monitoring), reconnects forever
(nats-py gives up after about two minutes by default, which would leave a service silently
deaf) and drains on close. The first connection is retried by the service runner.

A client connects as its role's NATS user (``shared.access``) when credentials are configured,
with its role's inbox prefix. What the server refuses becomes a typed error: wrong or missing
credentials raise :class:`NatsAuthError` from the first connect (nats-py would otherwise retry
for ever, which looks like a hang); a permissions violation, which the server reports only
through the error callback (the refused request itself just times out), is kept by the
connection's :class:`Access` as a :class:`NatsPermissionError` naming the operation and subject,
fails the start-up step waiting in :meth:`Access.check` at once, and stops a running service
(its crash handler) so it does not run on deaf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import weakref
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Final, TypeVar

import nats
from fast_depends.msgspec import MsgSpecSerializer
from faststream.nats import NatsBroker
from faststream.nats.security import NatsSecurity, NatsUserPassword
from nats.aio.client import Client
from nats.errors import AuthorizationError
from nats.errors import Error as NatsError

from shared import access, logs, tasks
from shared.http import StartupError
from shared.settings import NatsSettings

log = logs.get(__name__)
T = TypeVar("T")

#: How long a stopping service waits for in-flight handlers and for draining its connection
#: (seconds). Its whole stop must fit in the 5 s that supervisors allow.
STOP_GRACE: Final = 2.0


def client_name(service: str) -> str:
    """The name a service's NATS connection carries."""
    return f"slipstream-{service}"


class NatsAccessError(StartupError):
    """NATS refused this client: its credentials, or one of its operations."""


class NatsAuthError(NatsAccessError):
    """NATS refused the connection: no credentials where some are required, or wrong ones."""


class NatsPermissionError(NatsAccessError):
    """NATS refused an operation the user's permissions do not allow."""

    def __init__(self, user: str | None, operation: str, subject: str, queue: str = "") -> None:
        self.user = user
        self.operation = operation
        #: As the server reported it (nats-py lower-cases the server's error line).
        self.subject = subject
        who = f"user {user!r}" if user else "this anonymous connection"
        verb = "publish to" if operation == "publish" else "subscribe to"
        group = f" (queue {queue!r})" if queue else ""
        super().__init__(f"NATS refused {who} permission to {verb} {subject!r}{group}: the "
                         "user's permissions do not allow it (a NATS config older than this "
                         "version of Slipstream, or credentials of another role)")


_VIOLATION: Final = re.compile(
    r'permissions violation for (publish|subscription) to "([^"]*)"(?: using queue "([^"]*)")?',
    re.IGNORECASE)


def access_error(exc: BaseException, user: str | None) -> NatsAccessError | None:
    """The typed form of a NATS error about access, or ``None`` for any other error."""
    text = str(exc)
    if isinstance(exc, AuthorizationError) or "authorization violation" in text.lower():
        if user:
            return NatsAuthError(f"NATS refused the connection as user {user!r} (authorization "
                                 "violation): wrong password, or the server does not know the "
                                 "user; check nats.user and nats.password_file")
        return NatsAuthError("NATS refused the connection (authorization violation): the server "
                             "requires credentials; set nats.user and nats.password_file "
                             "(SLIPSTREAM_NATS_USER, SLIPSTREAM_NATS_PASSWORD_FILE)")
    match = _VIOLATION.search(text)
    if match:
        operation = "publish" if match[1].lower() == "publish" else "subscribe"
        return NatsPermissionError(user, operation, match[2], match[3] or "")
    return None


class Access:
    """What NATS refused one client. Its error callback raises :class:`NatsAuthError` out of the
    first connect; permissions violations are kept (the first in :attr:`refused`), logged, and
    reported to the service's crash handler."""

    def __init__(self, user: str | None) -> None:
        self.user = user
        self.connected = False
        self.refused: NatsPermissionError | None = None
        self._refused: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._refused is None:
            self._refused = asyncio.Event()
        return self._refused

    async def on_error(self, exc: Exception) -> bool:
        """Handle an access error; ``True`` if ``exc`` was one (and was not raised)."""
        error = access_error(exc, self.user)
        if isinstance(error, NatsAuthError):
            if not self.connected:
                raise error from exc
            # Reconnecting, and the server no longer takes these credentials (its config was
            # changed): keep trying, loudly; readiness says the service is not connected.
            log.error("nats refused the connection", error=str(error))
            return True
        if isinstance(error, NatsPermissionError):
            log.error("nats refused an operation", error=str(error))
            if self.refused is None:
                self.refused = error
                self._event().set()
                tasks.crash("nats-permissions", error)
            return True
        return error is not None

    async def check(self, step: Awaitable[T]) -> T:
        """Await a start-up step; if NATS refuses this client anything meanwhile, fail with
        that refusal at once instead of waiting for the step's timeout."""
        if self.refused is not None:
            raise self.refused
        work = asyncio.ensure_future(step)
        refused = asyncio.ensure_future(self._event().wait())
        try:
            await asyncio.wait({work, refused}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            refused.cancel()
            if not work.done():
                work.cancel()
            for task in (refused, work):
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({task})
        if self.refused is not None:
            if work.done() and not work.cancelled():
                work.exception()  # retrieved: the refusal is what the step's failure means
            raise self.refused
        return work.result()


def _callbacks(name: str, guard: Access) -> dict[str, Any]:
    async def on_error(exc: Exception) -> None:
        if await guard.on_error(exc):
            return
        log.warning("nats error", client=name, error=str(exc), error_type=type(exc).__name__)

    async def on_disconnected() -> None:
        log.warning("nats disconnected", client=name)

    async def on_reconnected() -> None:
        log.info("nats reconnected", client=name)

    async def on_closed() -> None:
        log.info("nats connection closed", client=name)

    return {"error_cb": on_error, "disconnected_cb": on_disconnected,
            "reconnected_cb": on_reconnected, "closed_cb": on_closed}


def role_of(service: str) -> access.Role | None:
    """The access role a client named for ``service`` has (``replay`` and ``tail`` are ops)."""
    if service in ("replay", "tail", "sources", "cli"):
        return access.Role.OPS
    try:
        return access.Role(service)
    except ValueError:
        return None


def credentials(settings: NatsSettings) -> dict[str, Any]:
    """``user``/``password`` and TLS options for ``nats.connect`` from the settings."""
    options: dict[str, Any] = {}
    if settings.user is not None:
        options["user"] = settings.user
        if settings.password_file is not None:
            options["password"] = access.read_password(Path(settings.password_file).expanduser())
        elif settings.password is not None:
            options["password"] = settings.password
    if settings.tls_ca or settings.tls_cert:
        context = ssl.create_default_context(
            cafile=str(Path(settings.tls_ca).expanduser()) if settings.tls_ca else None)
        if settings.tls_cert and settings.tls_key:
            context.load_cert_chain(str(Path(settings.tls_cert).expanduser()),
                                    str(Path(settings.tls_key).expanduser()))
        options["tls"] = context
    return options


def connect_options(servers: list[str], service: str, settings: NatsSettings, *,
                    guard: Access | None = None) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect`` (and FastStream's broker, which takes the same)."""
    name = client_name(service)
    role = role_of(service)
    guard = guard or Access(settings.user)
    options: dict[str, Any] = {
        "servers": servers,
        "name": name,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": settings.reconnect_wait,
        "connect_timeout": settings.connect_timeout,
        "ping_interval": 10,
        "max_outstanding_pings": 3,
        **credentials(settings),
        **_callbacks(name, guard),
    }
    if role is not None:
        options["inbox_prefix"] = access.inbox_prefix(role)
    return options


def pull_inbox(service: str) -> bytes:
    """The inbox prefix for a FastStream pull subscriber of ``service`` (FastStream's default,
    ``_INBOX.``, is outside the role's own inboxes, which are all it may subscribe to)."""
    role = role_of(service)
    return f"{access.inbox_prefix(role)}.".encode() if role else b"_INBOX."


async def connect(servers: list[str], service: str, settings: NatsSettings, *,
                  guard: Access | None = None) -> Client:
    """Connect a plain nats-py client (one attempt; see ``shared.service.retry_connect``).
    Wrong credentials raise :class:`NatsAuthError`."""
    guard = guard or Access(settings.user)
    nc = await nats.connect(**connect_options(servers, service, settings, guard=guard))
    guard.connected = True
    return nc


def broker(servers: list[str], service: str, settings: NatsSettings, *,
           guard: Access | None = None, **kwargs: Any) -> NatsBroker:
    """A FastStream broker with msgspec payloads and the same connection policy."""
    guard = guard or Access(settings.user)
    options = connect_options(servers, service, settings, guard=guard)
    # FastStream takes credentials and TLS as a security object, not as nats.connect's keywords.
    user, password, tls = options.pop("user", None), options.pop("password", None), \
        options.pop("tls", None)
    if user is not None:
        kwargs["security"] = NatsUserPassword(user, password or "", ssl_context=tls)
    elif tls is not None:
        kwargs["security"] = NatsSecurity(ssl_context=tls)
    # FastStream logs through a logger of ours (our handler, format and redaction; warnings
    # only unless log_level is debug); a line per message only in debug. A stop waits for
    # in-flight handlers at most STOP_GRACE: services cancel long work themselves on stop.
    made = NatsBroker(serializer=MsgSpecSerializer(), graceful_timeout=STOP_GRACE,
                      logger=logging.getLogger(logs.BROKER_LOGGER), log_level=logging.DEBUG,
                      **options, **kwargs)
    _GUARDS[made] = guard
    return made


_GUARDS: weakref.WeakKeyDictionary[NatsBroker, Access] = weakref.WeakKeyDictionary()


def guard_of(made: NatsBroker) -> Access:
    """The :class:`Access` of a broker made by :func:`broker` (a fresh one for any other)."""
    return _GUARDS.setdefault(made, Access(None))


async def close(nc: Client) -> None:
    """Drain a connection that is up (within :data:`STOP_GRACE`), close one that is not: a
    server that is already gone is given up on at once instead of waited for through
    reconnects."""
    if nc.is_closed:
        return
    if nc.is_connected and not nc.is_draining:
        try:
            await asyncio.wait_for(nc.drain(), STOP_GRACE)
        except (TimeoutError, NatsError, OSError) as exc:
            log.warning("nats drain cut short", error=f"{type(exc).__name__}: {exc}")
        else:
            return
    # Closing flushes what is buffered into a socket that may be dead already: that is fine.
    with contextlib.suppress(NatsError, OSError):
        await nc.close()
