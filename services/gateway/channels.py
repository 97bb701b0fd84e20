"""The gateway's side of channels (``shared/channels.py``): it mints channel URLs with the
operator's channel keys, for the public session views and the IPTV exports, and follows the
relay's switch events to say which stream each channel has on air.

:class:`KeyRing` and :class:`ChannelBoard` are pure apart from reading the keys file;
:func:`follow_switches` is the NATS edge that feeds the board.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Final

import msgspec
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from shared import logs, topology
from shared.channels import (
    KEYS_FILE,
    ChannelKeys,
    ChannelKeysError,
    ChannelSwitch,
    SwitchReason,
    check_channel,
    load_channel_keys,
)
from shared.feed import ChannelChanged, SessionView
from shared.sessions import SessionStatus
from shared.subjects import CHANNEL_SWITCHES_ALL, InvalidTokenError, channel_switched, check_token

log = logs.get(__name__)

#: Seconds between looks at the keys file: a rotation or revocation (``slipstream channels``)
#: reaches the URLs the gateway mints within this long, without a restart.
KEYS_RECHECK: Final = 2.0


class KeyRing:
    """The channel keys: the setting's (fixed), or ``<data>/channel.keys``, re-read when it
    changes. A file that turns unreadable keeps the last good keys (and says so in the log)."""

    def __init__(self, setting: str | None, data_dir: Path,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fixed = bool(setting)
        self._path = data_dir / KEYS_FILE
        self._clock = clock
        self._keys = load_channel_keys(setting, data_dir)
        self._stamp = self._mtime()
        self._checked = clock()

    def _mtime(self) -> tuple[int, int, int] | None:
        """What tells a changed file (a rotation replaces it: a new inode, even within one
        tick of a coarse clock)."""
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_ino, stat.st_size

    def current(self) -> ChannelKeys:
        if self._fixed or self._clock() - self._checked < KEYS_RECHECK:
            return self._keys
        self._checked = self._clock()
        stamp = self._mtime()
        if stamp is not None and stamp != self._stamp:
            try:
                self._keys = ChannelKeys.from_json(self._path.read_bytes(), str(self._path))
                self._stamp = stamp
                log.info("channel keys reloaded", keys=[k.id for k in self._keys.keys])
            except (ChannelKeysError, OSError) as exc:
                log.error("channel keys file unusable; keeping the previous keys", error=str(exc))
        return self._keys


class SwitchRejectedError(ValueError):
    """A switch event that is malformed, or names something that is not a channel or stream."""


class OnAir(msgspec.Struct, frozen=True, kw_only=True):
    """What one channel has on air, as its last switch said."""

    stream: str | None
    at: datetime
    reason: SwitchReason


_switch_decoder = msgspec.json.Decoder(ChannelSwitch)


def decode_switch(subject: str, data: bytes) -> ChannelSwitch:
    """The switch event in ``data``, checked against its ``subject``; else raise
    :class:`SwitchRejectedError` saying why (its text never quotes the payload)."""
    try:
        switch = _switch_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise SwitchRejectedError(f"not a channel switch: {exc}") from exc
    try:
        channel = check_channel(switch.channel)
        for stream in (switch.from_stream, switch.to_stream):
            if stream is not None:
                check_token(stream)
    except InvalidTokenError as exc:
        raise SwitchRejectedError("a channel switch names an invalid channel or stream") from exc
    if subject != channel_switched(channel):
        raise SwitchRejectedError(f"a switch of channel {channel} arrived on {subject}")
    if switch.at.tzinfo is None:
        raise SwitchRejectedError("a channel switch without a time zone")
    return switch


class ChannelBoard:
    """Channel URLs and what each channel has on air (the newest switch of each wins, so
    switches published by several relays, or replayed, never take it backwards)."""

    def __init__(self, keys: KeyRing, relay_url: str) -> None:
        self.keys = keys
        self.relay_url = relay_url
        self.on_air: dict[str, OnAir] = {}
        #: The channel fields each session's clients were last sent (to send only changes).
        self.sent: dict[str, ChannelChanged] = {}

    def url(self, channel: str) -> str:
        return self.keys.current().master_url(self.relay_url, channel)

    def switched(self, switch: ChannelSwitch) -> bool:
        """Take a (checked) switch; whether it changed what the channel has on air."""
        current = self.on_air.get(switch.channel)
        if current is not None and switch.at < current.at:
            return False
        new = OnAir(stream=switch.to_stream, at=switch.at, reason=switch.reason)
        self.on_air[switch.channel] = new
        return new != current

    def change(self, session: str, has_streams: bool) -> ChannelChanged:
        """The channel fields of ``session``'s public view."""
        on_air = self.on_air.get(session)
        return ChannelChanged(
            session=session, channel_url=self.url(session) if has_streams else None,
            on_air=on_air.stream if on_air else None, switched_at=on_air.at if on_air else None,
            switch_reason=on_air.reason if on_air else None)

    def unsent(self, session: str, has_streams: bool) -> ChannelChanged | None:
        """``session``'s channel fields if they differ from what its clients were last sent."""
        change = self.change(session, has_streams)
        if self.sent.get(session) == change:
            return None
        self.sent[session] = change
        return change

    def view(self, status: SessionStatus, has_streams: bool) -> SessionView:
        """The public view of a session: its status and its channel fields."""
        change = self.change(status.session.key, has_streams)
        return SessionView(session=status.session, phase=status.phase, since=status.since,
                           revision=status.revision, channel_url=change.channel_url,
                           on_air=change.on_air, switched_at=change.switched_at,
                           switch_reason=change.switch_reason)


async def follow_switches(nc: Client, on_switch: Callable[[ChannelSwitch], None]) -> None:
    """Pass every channel switch to ``on_switch`` until cancelled. Where a JetStream stream
    keeps the switches, the last one of each channel comes first (so a restarted gateway knows
    what is on air); otherwise a core subscription takes them from now on."""
    sub: Subscription
    try:
        # The stream is named, not looked up by subject: that lookup ($JS.API.STREAM.NAMES) is
        # outside the gateway's NATS permissions.
        sub = await nc.jetstream().subscribe(
            CHANNEL_SWITCHES_ALL, stream=topology.CHANNELS_STREAM, ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)
        log.info("following channel switches from their stream")
    except NotFoundError:
        sub = await nc.subscribe(CHANNEL_SWITCHES_ALL)
        log.info("following channel switches (no stream keeps them: from now on)")
    try:
        async for msg in sub.messages:
            try:
                switch = decode_switch(msg.subject, msg.data)
            except SwitchRejectedError as exc:
                log.warning("channel switch ignored", subject=msg.subject, error=str(exc))
                continue
            on_switch(switch)
    finally:
        await sub.unsubscribe()
