"""Channels served by the relay: ``/c/<channel>/<key-id>.<sig>/master.m3u8`` plays the best
stream of a session (or, for ``live-now``, of whichever session is live, and an off-air slate
between sessions), and switches streams inside the same media playlists.

A channel runs while it is watched (a playlist asked for in the last :data:`IDLE` seconds): every
:data:`TICK` it polls the playlists of the stream on air (through the relay's shared upstream
fetch, so viewers and the channel share one request), tells :mod:`services.relay.channel_pick`
what it saw, and feeds each watched slot's :class:`~services.relay.channel_splice.Timeline`.
A decision to switch is published as a :class:`shared.channels.ChannelSwitch` (through an
outbox, so a NATS outage delays the event and never a viewer) and the new stream's matching
variant is spliced in at once.

The master playlist names variant slots (``v0.m3u8``, ...) taken from the stream on air when the
channel is first asked for; each slot then plays, of any stream put on air, the variant nearest
in resolution and bandwidth. URIs in a channel's playlists are relative (``v0.m3u8``,
``<session>.<stream-id>/m/<ref>.ts``, ``_slate/m/0.ts``), so they carry whichever valid token the viewer
came with, and segments go through the relay's shared upstream fetch: a hundred viewers of a
channel cost one upstream request per segment.

Channel keys are read again when their file changes, so ``slipstream channels revoke`` takes
effect on a running relay within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import urljoin

from nats.aio.client import Client
from nats.errors import Error as NatsError
from prometheus_client import Counter

from services.relay.channel_pick import Candidate, Observed, Picker, Rendition, Switch, match
from services.relay.channel_splice import Media, Segment, SpliceError, Timeline, parse
from services.relay.relay import PLAYLIST_TYPE, Page, Relay, RelayError, Served, Target
from services.relay.rewrite import attributes
from services.relay.sniff import CONTENT_TYPES
from services.relay.sniff import Media as Sniffed
from services.relay.upstream import Body, UpstreamError
from shared import logs, subjects
from shared.channels import (
    KEYS_FILE,
    LIVE_NOW,
    ChannelKeys,
    ChannelKeysError,
    ChannelSwitch,
    ChannelTokenError,
    SwitchReason,
    check_channel,
    load_channel_keys,
)
from shared.codec import encode
from shared.kvmirror import KvMirror
from shared.sessions import Phase, SessionEvent, phase_of
from shared.streams import Health, StreamRecord, public_detail
from shared.subjects import InvalidTokenError

log = logs.get(__name__)

#: Seconds between two looks at a channel's stream on air.
TICK: Final = 0.5
#: Seconds a channel keeps running after its last playlist request.
IDLE: Final = 120.0
#: Seconds a slot is fed after its last playlist request (slot 0 is always fed).
SLOT_IDLE: Final = 30.0
#: Seconds between two looks for live sessions whose channel should run unwatched.
KEEP_LIVE: Final = 2.0
#: Seconds a first request waits for the channel's first decision.
FIRST_TICK: Final = 10.0
SLATE_DIR: Final = Path(__file__).parent / "slate"
#: Not a stream id (those start with a letter or digit): the slate's segments.
SLATE: Final = "_slate"
SLATE_SECONDS: Final = 2.0
SLATE_RENDITION: Final = Rendition(bandwidth=200_000, width=320, height=180)

SWITCHES = Counter("slipstream_relay_channel_switches_total", "Streams put on air by channels",
                   ["reason"])


class KeyRing:
    """The channel keys, read again when their file changes (not when they come from a setting)."""

    def __init__(self, setting: str | None, data_dir: Path) -> None:
        self.setting = setting
        self.data_dir = data_dir
        self.keys = load_channel_keys(setting, data_dir)
        self._mtime = self._stat()
        self._checked = time.monotonic()

    def _stat(self) -> float:
        try:
            return (self.data_dir / KEYS_FILE).stat().st_mtime
        except OSError:
            return 0.0

    def current(self) -> ChannelKeys:
        now = time.monotonic()
        if self.setting or now - self._checked < 1.0:
            return self.keys
        self._checked = now
        mtime = self._stat()
        if mtime != self._mtime:
            try:
                self.keys = load_channel_keys(None, self.data_dir)
                self._mtime = mtime
                log.info("channel keys reloaded", keys=[k.id for k in self.keys.keys])
            except (ChannelKeysError, OSError) as exc:
                log.error("channel keys file unreadable; keeping the previous keys", error=str(exc))
        return self.keys


class Slate:
    """The off-air slate: a few committed segments looped by the clock (every replica agrees)."""

    def __init__(self, folder: Path = SLATE_DIR) -> None:
        self.bodies: list[bytes] = []
        while (folder / f"{len(self.bodies)}.ts").exists():
            self.bodies.append((folder / f"{len(self.bodies)}.ts").read_bytes())
        if not self.bodies:
            raise FileNotFoundError(f"no slate segments in {folder}")

    def media(self, wall: float, window: int = 3) -> Media:
        last = math.floor(wall / SLATE_SECONDS) - 1
        count = len(self.bodies)
        segments = tuple(
            Segment(seq=seq, duration=SLATE_SECONDS,
                    lines=(f"#EXTINF:{SLATE_SECONDS:.3f},", f"{SLATE}/m/{seq % count}.ts"),
                    discontinuity=seq % count == 0)
            for seq in range(last - window + 1, last + 1))
        return Media(target=SLATE_SECONDS, segments=segments, ended=False)

    def body(self, name: str) -> bytes | None:
        index, _, ext = name.partition(".")
        if ext != "ts" or not index.isdigit() or int(index) >= len(self.bodies):
            return None
        return self.bodies[int(index)]


@dataclass
class Slot:
    """One variant slot of a channel: what it was declared as, and what it served."""

    rendition: Rendition
    timeline: Timeline = field(default_factory=Timeline)
    requested: float = 0.0


@dataclass
class Channel:
    """The state of one running channel."""

    name: str
    picker: Picker = field(default_factory=Picker)
    #: The session followed (the channel's own, or the one live now; ``None``: none).
    session: str | None = None
    slots: list[Slot] = field(default_factory=list)
    requested: float = 0.0
    started: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Streams this channel put on air (or could), by stream key, as last seen (their segments
    #: may outlive the record).
    records: dict[str, StreamRecord] = field(default_factory=dict)


class Outbox:
    """Switch events on their way to JetStream, in order, retried until NATS takes them."""

    def __init__(self, client: Callable[[], Client | None]) -> None:
        self.client = client
        self.queue: asyncio.Queue[ChannelSwitch] = asyncio.Queue(maxsize=1000)

    def put(self, event: ChannelSwitch) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            log.error("channel switch events are piling up; dropped one", channel=event.channel)

    async def run(self) -> None:
        while True:
            event = await self.queue.get()
            # Replicas that take the same decision at about the same time publish it once.
            msg_id = (f"{event.channel}:{event.from_stream}:{event.to_stream}:{event.reason}:"
                      f"{int(event.at.timestamp() // 30)}")
            while True:
                nc = self.client()
                if nc is not None and nc.is_connected:
                    try:
                        await nc.jetstream().publish(subjects.channel_switched(event.channel),
                                                     encode(event), timeout=2.0,
                                                     headers={"Nats-Msg-Id": msg_id})
                        break
                    except (NatsError, TimeoutError) as exc:
                        log.warning("channel switch not published yet; retrying",
                                    error=str(exc) or type(exc).__name__)
                await asyncio.sleep(0.5)


class Channels:
    """Every channel of this relay."""

    def __init__(self, relay: Relay, keys: KeyRing, sessions: KvMirror[SessionEvent],
                 outbox: Outbox, *, slate: Slate | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.relay = relay
        self.keys = keys
        self.sessions = sessions
        self.outbox = outbox
        self.slate = slate or Slate()
        self.clock = clock
        self.channels: dict[str, Channel] = {}
        #: What was measured of each stream, by stream key.
        self.observed: dict[str, Observed] = {}
        self._variants: dict[tuple[str, str], list[tuple[Rendition, str]]] = {}
        self._wake = asyncio.Event()

    # --- requests -------------------------------------------------------------------------

    def authorise(self, name: str, token: str) -> Channel:
        """The channel a request names, if its token is good; 404/403 otherwise."""
        try:
            check_channel(name)
        except InvalidTokenError as exc:
            raise RelayError(404, "no such channel") from exc
        try:
            self.keys.current().verify(name, token)
        except ChannelTokenError as exc:
            raise RelayError(403, f"channel link refused: {exc}") from exc
        channel = self.channels.get(name)
        if channel is None:
            channel = self.channels[name] = Channel(name)
            self._wake.set()
        return channel

    async def _watched(self, channel: Channel) -> None:
        channel.requested = self.clock()
        if not channel.ready.is_set():
            try:
                await asyncio.wait_for(channel.ready.wait(), FIRST_TICK)
            except TimeoutError as exc:
                raise RelayError(503, "the channel is starting") from exc

    async def master(self, channel: Channel) -> Served:
        await self._watched(channel)
        async with channel.lock:
            if not channel.slots:
                await self._declare_slots(channel)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
        for index, slot in enumerate(channel.slots):
            r = slot.rendition
            attrs = [f"BANDWIDTH={r.bandwidth or SLATE_RENDITION.bandwidth}"]
            if r.width and r.height:
                attrs.append(f"RESOLUTION={r.width}x{r.height}")
            lines += [f"#EXT-X-STREAM-INF:{','.join(attrs)}", f"v{index}.m3u8"]
        return Served(content_type=PLAYLIST_TYPE, page=Page.of("\n".join(lines) + "\n"))

    async def media(self, channel: Channel, name: str) -> Served:
        """A slot's media playlist (``v<slot>.m3u8``)."""
        stem, _, ext = name.partition(".")
        if ext != "m3u8" or not stem.startswith("v") or not stem[1:].isdigit():
            raise RelayError(404, "no such playlist in this channel")
        await self._watched(channel)
        async with channel.lock:
            if not channel.slots:
                await self._declare_slots(channel)
            index = int(stem[1:])
            if index >= len(channel.slots):
                raise RelayError(404, "no such slot in this channel")
            slot = channel.slots[index]
            slot.requested = self.clock()
            if not slot.timeline.entries:
                await self._feed(channel, [index], self.clock())
        if not slot.timeline.entries:
            raise RelayError(503, "the channel has nothing to play yet")
        return Served(content_type=PLAYLIST_TYPE, page=Page.of(slot.timeline.render()))

    async def resource(self, channel: Channel, stream: str, kind: str, name: str) -> Served:
        """A segment (or key, init section) named by one of the channel's playlists."""
        if stream == SLATE:
            body = self.slate.body(name) if kind == "m" else None
            if body is None:
                raise RelayError(404, "no such slate segment")
            return _bytes(body)
        if kind == "p":
            raise RelayError(404, "no such resource in this channel")
        record = channel.records.get(stream)
        if record is None:
            raise RelayError(404, "no such stream in this channel")
        current = self.relay.records.get(stream)
        if current is not None:
            record = current
        return await self.relay.resource(self._target(record), kind, name)

    # --- measuring ------------------------------------------------------------------------

    def on_segment(self, stream: str, seconds: float, error: UpstreamError | None) -> None:
        """The upstream's hook: a segment of ``stream`` (a stream key) was downloaded."""
        observed = self.observed.get(stream)
        if observed is not None:
            observed.segment_done(self.clock(), seconds, error is not None)

    # --- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every watched channel, and the channel of every live session with streams (so
        what is on air is decided, and announced, even before anyone watches), each in its own
        loop, until cancelled."""
        running: set[str] = set()
        async with asyncio.TaskGroup() as group:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), KEEP_LIVE)
                self._wake.clear()
                now = self.clock()
                for session in self._live_sessions():
                    if self._records(session):
                        channel = self.channels.setdefault(session, Channel(session))
                        channel.requested = max(channel.requested, now)
                for name, channel in list(self.channels.items()):
                    if name not in running:
                        running.add(name)
                        group.create_task(self._loop(channel, running), name=f"channel-{name}")

    def forget(self, key: str) -> None:
        """A stream was removed: drop what was measured of it."""
        self.observed.pop(key, None)

    async def _loop(self, channel: Channel, running: set[str]) -> None:
        channel.requested = max(channel.requested, self.clock())
        try:
            while self.clock() - channel.requested < IDLE:
                try:
                    async with channel.lock:
                        await self.tick(channel, self.clock())
                except (RelayError, UpstreamError, SpliceError, OSError) as exc:
                    log.warning("channel tick failed", channel=channel.name, error=str(exc))
                channel.ready.set()
                await asyncio.sleep(TICK)
        finally:
            running.discard(channel.name)
            self.channels.pop(channel.name, None)
            log.info("channel stopped (nobody watching)", channel=channel.name)

    def _live_sessions(self) -> list[str]:
        """The sessions live now, the most recently started first."""
        live = [event for event, _ in self.sessions.values.values() if phase_of(event) is Phase.LIVE]
        return [e.session.key for e in sorted(live, key=lambda e: (e.at, e.session.key),
                                               reverse=True)]

    def _live_session(self) -> str | None:
        """The session "live now" follows: the live one started last that has streams (else
        the live one started last)."""
        live = self._live_sessions()
        return next((key for key in live if self._records(key)), live[0] if live else None)

    def _records(self, session: str | None) -> dict[str, StreamRecord]:
        if session is None:
            return {}
        prefix = f"{session}."
        return {record.id: record for key, (record, _) in self.relay.records.values.items()
                if key.startswith(prefix)}

    async def tick(self, channel: Channel, now: float) -> None:
        """Look at the stream on air, decide, feed the watched slots."""
        session = channel.name if channel.name != LIVE_NOW else self._live_session()
        records = self._records(session)
        # The latest record of each stream (a re-resolve changes its upstream URL).
        channel.records.update({f"{r.session}.{sid}": r for sid, r in records.items()})
        switch: Switch | None = None
        if session != channel.session:
            previous = channel.picker.on_air
            moved = channel.started and channel.session != session
            channel.session, channel.picker = session, Picker()
            decided = channel.picker.decide(now, self._candidates(records))
            if moved and (decided.to if decided else None) != previous:
                switch = Switch(previous, decided.to if decided else None, SwitchReason.SESSION,
                                f"live now: {session or 'no session'}")
            elif decided is not None:
                switch = decided
        else:
            on_air = channel.picker.on_air
            if on_air is not None and on_air in records:
                await self._feed(channel, self._fed_slots(channel, now), now)
            switch = channel.picker.decide(now, self._candidates(records))
        channel.started = True
        if switch is not None:
            self._switched(channel, switch, records, now)
            await self._feed(channel, self._fed_slots(channel, now), now)
        elif channel.picker.on_air is None:
            await self._feed(channel, self._fed_slots(channel, now), now)

    def _candidates(self, records: dict[str, StreamRecord]) -> dict[str, Candidate]:
        return {sid: Candidate(sid, record.health, record.priority,
                               self.observed.get(f"{record.session}.{sid}"))
                for sid, record in records.items()}

    def _fed_slots(self, channel: Channel, now: float) -> list[int]:
        if not channel.slots:
            return [0]
        return [i for i, slot in enumerate(channel.slots)
                if i == 0 or now - slot.requested < SLOT_IDLE]

    def _switched(self, channel: Channel, switch: Switch, records: dict[str, StreamRecord],
                  now: float) -> None:
        if switch.to is not None:
            record = records[switch.to]
            key = f"{record.session}.{record.id}"
            channel.records[key] = record
            observed = self.observed.setdefault(key, Observed())
            observed.last_sequence, observed.advanced_at = None, now
            observed.playlist_failures, observed.ended = 0, False
        SWITCHES.labels(switch.reason.value).inc()
        event = ChannelSwitch(channel=channel.name, session=channel.session,
                              from_stream=switch.previous, to_stream=switch.to,
                              reason=switch.reason, detail=switch.detail, at=datetime.now(UTC))
        log.info("channel switched", channel=channel.name, session=channel.session,
                 from_stream=switch.previous, to_stream=switch.to, reason=switch.reason.value,
                 detail=switch.detail)
        self.outbox.put(event)

    # --- playlists ------------------------------------------------------------------------

    @staticmethod
    def _target(record: StreamRecord) -> Target:
        # Relative URIs: "<stream-id>/m/<ref>.ts" next to the channel's own playlists.
        key = f"{record.session}.{record.id}"
        return Target(key=key, record=record, prefix=key)

    async def variants(self, record: StreamRecord) -> list[tuple[Rendition, str]]:
        """The stream's variants and their upstream URLs (itself alone if it has none)."""
        found = self._variants.get((record.id, record.upstream_url))
        if found is not None:
            return found
        if record.variants:
            found = [(Rendition(v.bandwidth, v.width, v.height), v.uri) for v in record.variants]
        else:
            try:
                got = await self.relay.upstream.playlist(record.upstream_url, record.headers,
                                                         record.cookies, 1.0,
                                                         stream=f"{record.session}.{record.id}")
            except UpstreamError as exc:
                raise RelayError(exc.status, exc.reason) from exc
            found = _master_variants(got.text, str(got.url)) or [(Rendition(), record.upstream_url)]
        if len(self._variants) > 1024:
            self._variants.clear()
        self._variants[(record.id, record.upstream_url)] = found
        return found

    @staticmethod
    def _on_air(channel: Channel) -> StreamRecord | None:
        on_air = channel.picker.on_air
        if on_air is None or channel.session is None:
            return None
        return channel.records.get(f"{channel.session}.{on_air}")

    async def _declare_slots(self, channel: Channel) -> None:
        """The slots of the channel's master playlist, for as long as the channel runs: the
        variants of the stream on air; with none on air, one slot that plays the first variant
        (the master's best, usually) of whatever comes on air."""
        record = self._on_air(channel)
        renditions = [Rendition()]
        if record is not None:
            with contextlib.suppress(RelayError):
                renditions = [r for r, _ in await self.variants(record)]
        channel.slots = [Slot(r) for r in renditions]

    async def _feed(self, channel: Channel, indexes: list[int], now: float) -> None:
        """Bring the slots at ``indexes`` up to date with what is on air."""
        record = self._on_air(channel)
        if not channel.slots:
            if record is None:
                return  # nothing declared and nothing to declare from: wait for a viewer
            await self._declare_slots(channel)
        if record is None:
            media = self.slate.media(time.time())
            for index in indexes:
                channel.slots[index].timeline.feed(SLATE, media, now)
            return
        key = f"{record.session}.{record.id}"
        observed = self.observed.setdefault(key, Observed())
        try:
            variants = await self.variants(record)
        except RelayError as exc:
            observed.playlist_failed(now, _public(exc.reason))
            return
        renditions = [r for r, _ in variants]
        fetched: dict[str, Media | None] = {}
        for index in indexes:
            slot = channel.slots[index]
            url = variants[match(slot.rendition, renditions)][1]
            if url not in fetched:
                fetched[url] = await self._media(record, url, observed, now)
            got = fetched[url]
            if got is not None:
                slot.timeline.feed(f"{record.id} {url}", got, now)

    async def _media(self, record: StreamRecord, url: str, observed: Observed,
                     now: float) -> Media | None:
        try:
            target = self._target(record)
            served = await self.relay.playlist(target, url)
            # The page has a slot where a viewer's prefix goes: here the relative stream key.
            media = parse(served.page.render(target.prefix).decode() if served.page else "")
        except (RelayError, SpliceError) as exc:
            observed.playlist_failed(now, _public(exc.reason if isinstance(exc, RelayError)
                                                  else f"malformed playlist: {exc}"))
            return None
        observed.playlist_ok(now, media.last_sequence, media.target, ended=media.ended)
        return media


def _public(reason: str) -> str:
    """A failure as events may tell it: one of the fixed public phrases, never upstream text
    (which may name a host or quote an answer)."""
    return public_detail(Health.DEAD, reason) or "the source failed"


def _bytes(body: bytes) -> Served:
    """A body held in memory, served like a cached segment."""
    whole = Body(content_type=CONTENT_TYPES[Sniffed.TS], media=Sniffed.TS, chunks=[body],
                 size=len(body), done=True)
    return Served(content_type=CONTENT_TYPES[Sniffed.TS], body=whole)


def _master_variants(text: str, base: str) -> list[tuple[Rendition, str]]:
    """The variants of a master playlist (empty for a media playlist)."""
    found: list[tuple[Rendition, str]] = []
    pending: dict[str, str] | None = None
    for raw in text.split("\n"):
        line = raw.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = attributes(line[len("#EXT-X-STREAM-INF:"):])
        elif line and not line.startswith("#") and pending is not None:
            width = height = None
            res = pending.get("RESOLUTION", "")
            if "x" in res:
                w, _, h = res.partition("x")
                if w.isdigit() and h.isdigit():
                    width, height = int(w), int(h)
            bandwidth = pending.get("BANDWIDTH", "0")
            found.append((Rendition(int(bandwidth) if bandwidth.isdigit() else 0, width, height),
                          urljoin(base, line)))
            pending = None
    return found
