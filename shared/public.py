"""Public events: what other programs follow on NATS, the public view only, never a secret.

``public.streams.<season>.<event>.<kind>.<stream-id>`` carries :class:`~shared.feed.StreamChanged`
(the stream's :class:`~shared.streams.StreamView`, through the same
:func:`~shared.streams.public_view` boundary as the web feed, without a playback URL: those are
signed and expire, ask the gateway's ``/api/streams`` for one) or
:class:`~shared.feed.StreamRemoved`; ``public.sessions.<season>.<event>.<kind>`` carries
:class:`~shared.feed.SessionChanged` (without the channel fields, which only the gateway
knows). The ``PUBLIC`` stream keeps the last event of each subject, so a consumer starting
with ``DeliverPolicy.LAST_PER_SUBJECT`` gets the current picture, then every change. The
``consumer`` NATS user may read these and nothing else.

The service that owns a bucket announces its changes: the extractor those of ``streams``, the
scheduler those of ``sessions``. An :class:`Announcer` follows the bucket (a
:class:`~shared.kvmirror.KvMirror`), turns each change into its public event and publishes it
with ``Nats-Msg-Id`` ``<key>@<revision>``, so replicas announcing the same change store it once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Final, Generic, TypeVar

from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from shared import logs, subjects
from shared.codec import encode
from shared.feed import SessionChanged, SessionView, StreamChanged, StreamRemoved
from shared.sessions import SessionEvent, status_of
from shared.streams import StreamRecord, public_view
from shared.tasks import background

log = logs.get(__name__)

PublicEvent = StreamChanged | StreamRemoved | SessionChanged
T = TypeVar("T")
#: Seconds between attempts to publish an event while NATS is away.
RETRY: Final = 1.0


def stream_event(key: str, record: StreamRecord | None, revision: int) -> tuple[str, PublicEvent]:
    """The subject and public event of a change of the ``streams`` bucket (``None``: removed)."""
    session, _, stream_id = key.rpartition(".")
    subject = subjects.public_stream(session, stream_id)
    if record is None:
        return subject, StreamRemoved(session=session, id=stream_id, revision=revision)
    return subject, StreamChanged(stream=public_view(record, playback_url="", revision=revision))


def session_event(key: str, event: SessionEvent | None,
                  revision: int) -> tuple[str, PublicEvent] | None:
    """The subject and public event of a change of the ``sessions`` bucket; ``None`` for a
    removal (the scheduler never removes a session; it records it again)."""
    if event is None:
        return None
    status = status_of(event, revision)
    # The channel fields are the gateway's (its signing keys, the relay's switches): a public
    # event carries the session's status only.
    return subjects.public_session(key), SessionChanged(status=SessionView(
        session=status.session, phase=status.phase, since=status.since, revision=revision))


class Announcer(Generic[T]):
    """Publishes the public event of each change of a bucket, in order, retrying while NATS is
    away (with the same message id, so a retry is stored once)."""

    def __init__(self, js: JetStreamContext,
                 to_public: Callable[[str, T | None, int], tuple[str, PublicEvent] | None]) -> None:
        self.js = js
        self.to_public = to_public
        self.queue: asyncio.Queue[tuple[str, T | None, int]] = asyncio.Queue()

    def on_change(self, key: str, value: T | None, revision: int) -> None:
        """The mirror's change callback: queue the change (announced by :meth:`run`)."""
        self.queue.put_nowait((key, value, revision))

    async def run(self) -> None:
        """Announce queued changes until cancelled."""
        while True:
            key, value, revision = await self.queue.get()
            try:
                made = self.to_public(key, value, revision)
            except ValueError as exc:  # a key that names no session: nothing public to say
                log.warning("change not announced", key=key, error=str(exc))
                continue
            if made is None:
                continue
            subject, event = made
            await self._publish(subject, encode(event), f"{key}@{revision}")

    async def _publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        while True:
            try:
                await self.js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
            except (NatsError, TimeoutError) as exc:
                log.debug("public event not published yet; retrying", subject=subject,
                          error=str(exc) or type(exc).__name__)
                await asyncio.sleep(RETRY)
            else:
                return


@contextlib.asynccontextmanager
async def announcing(announcer: Announcer[T], name: str) -> AsyncIterator[None]:
    """Run ``announcer`` while the ``async with`` body runs (a critical task)."""
    async with background(announcer.run(), name, critical=True):
        yield
