"""Channels: one long-lived URL per session (and one for "whatever is live now") that plays the
best stream of the session and switches between streams without the player noticing.

The relay serves and signs-checks channels; the gateway mints their URLs for the public views
and the IPTV exports (M3U, XMLTV). This module is the only place their shape is spelled:

    /c/<channel>/<key-id>.<signature>/master.m3u8
    /c/<channel>/<key-id>.<signature>/v<slot>.m3u8       a variant slot's media playlist

``<channel>`` is a session key (``2026.monaco.race``) or :data:`LIVE_NOW`. Unlike stream links,
channel URLs do not expire: an IPTV player (Jellyfin, Kodi, Threadfin) loads an M3U once and
keeps its URLs for weeks. They are revocable instead: each is signed with one of the operator's
channel keys (:class:`ChannelKeys`), the newest key signs, every listed key verifies, and
removing a key (``slipstream channels revoke``) revokes every URL it signed. A channel URL
authorises that channel only, and names nothing upstream.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import msgspec

from shared.subjects import check_session_key

#: The channel that follows whichever session is live (an off-air slate between sessions).
LIVE_NOW: Final = "live-now"
SIG_BYTES: Final = 16
KEYS_FILE: Final = "channel.keys"
_KEY_ID: Final = re.compile(r"^[a-z0-9]{1,16}$")
_TOKEN: Final = re.compile(r"^([a-z0-9]{1,16})\.([A-Za-z0-9_-]{22})$")


class ChannelTokenError(Exception):
    """A channel URL's token is malformed, forged, or signed by a key no longer listed."""


class ChannelKeysError(Exception):
    """The channel keys file or setting is unusable; ``str()`` says why."""


def check_channel(channel: str) -> str:
    """``channel`` if it names a channel (a session key or :data:`LIVE_NOW`)."""
    return channel if channel == LIVE_NOW else check_session_key(channel)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class ChannelKey:
    """One signing key: a short public id (in every URL it signs) and its secret."""

    id: str
    secret: bytes

    def __post_init__(self) -> None:
        if not _KEY_ID.match(self.id):
            raise ChannelKeysError(f"key id {self.id!r}: 1 to 16 lowercase letters or digits")
        if len(self.secret) < 16:
            raise ChannelKeysError(f"key {self.id}: the secret needs at least 16 characters")


@dataclass(frozen=True)
class ChannelKeys:
    """The operator's channel keys, oldest first: the last one signs, all of them verify."""

    keys: tuple[ChannelKey, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ChannelKeysError("no channel key: every channel URL would be refused")
        ids = [k.id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise ChannelKeysError(f"duplicate channel key ids: {ids}")

    def _sig(self, key: ChannelKey, channel: str) -> str:
        mac = hmac.new(key.secret, f"channel/{channel}".encode(), hashlib.sha256)
        return _b64(mac.digest()[:SIG_BYTES])

    def token(self, channel: str) -> str:
        """The token of ``channel``'s URLs, signed with the newest key."""
        key = self.keys[-1]
        return f"{key.id}.{self._sig(key, check_channel(channel))}"

    def prefix(self, channel: str) -> str:
        """``/c/<channel>/<token>``."""
        return f"/c/{check_channel(channel)}/{self.token(channel)}"

    def master_url(self, base: str, channel: str) -> str:
        """The URL an IPTV player or the web UI keeps for ``channel``."""
        return f"{base.rstrip('/')}{self.prefix(channel)}/master.m3u8"

    def verify(self, channel: str, token: str) -> str:
        """Check a channel token; return the id of the key that signed it, or raise
        :class:`ChannelTokenError`."""
        match = _TOKEN.match(token)
        if match is None:
            raise ChannelTokenError("malformed channel token")
        key = next((k for k in self.keys if k.id == match[1]), None)
        if key is None:
            raise ChannelTokenError("this channel link was revoked")
        if not hmac.compare_digest(match[2], self._sig(key, check_channel(channel))):
            raise ChannelTokenError("bad signature")
        return key.id

    def to_json(self) -> bytes:
        return json.dumps({"keys": [{"id": k.id, "secret": k.secret.decode()}
                                    for k in self.keys]}, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> ChannelKeys:
        try:
            raw = json.loads(data)
            return cls(tuple(ChannelKey(str(k["id"]), str(k["secret"]).encode())
                             for k in raw["keys"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ChannelKeysError(f"{where}: not a channel keys file ({exc})") from exc

    @classmethod
    def from_setting(cls, value: str) -> ChannelKeys:
        """Keys from a setting: ``id:secret`` pairs separated by commas, oldest first."""
        pairs = [p.strip() for p in value.split(",") if p.strip()]
        keys = []
        for pair in pairs:
            kid, sep, secret = pair.partition(":")
            if not sep:
                raise ChannelKeysError("channel keys: write each as id:secret, comma-separated")
            keys.append(ChannelKey(kid, secret.encode()))
        return cls(tuple(keys))


def _new_key(existing: tuple[ChannelKey, ...] = ()) -> ChannelKey:
    taken = {k.id for k in existing}
    n = len(existing) + 1
    while f"k{n}" in taken:
        n += 1
    return ChannelKey(f"k{n}", secrets.token_urlsafe(32).encode())


def _write_exclusive(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``path`` (mode 0600) atomically; without ``replace``, only if it does not exist
    (several processes may start at once: the first one's file wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(tmp, path)
            return
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def load_channel_keys(setting: str | None, data_dir: Path) -> ChannelKeys:
    """The channel keys: the configured ones, else ``<data>/channel.keys`` (one key is made on
    first use, exclusively, so the relay and the gateway starting together agree)."""
    if setting:
        return ChannelKeys.from_setting(setting)
    path = data_dir / KEYS_FILE
    if not path.exists():
        _write_exclusive(path, ChannelKeys((_new_key(),)).to_json(), replace=False)
    return ChannelKeys.from_json(path.read_bytes(), str(path))


def rotate(data_dir: Path) -> ChannelKeys:
    """Add a new signing key to ``<data>/channel.keys``; URLs signed before keep working until
    their key is revoked."""
    current = load_channel_keys(None, data_dir)
    keys = ChannelKeys((*current.keys, _new_key(current.keys)))
    _write_exclusive(data_dir / KEYS_FILE, keys.to_json(), replace=True)
    return keys


def revoke(data_dir: Path, key_id: str) -> ChannelKeys:
    """Remove a key: every channel URL it signed is refused from now on (by each relay once it
    reloads the file). The last key cannot be removed: rotate first."""
    current = load_channel_keys(None, data_dir)
    if key_id not in {k.id for k in current.keys}:
        raise ChannelKeysError(f"no channel key {key_id!r} (keys: {[k.id for k in current.keys]})")
    keys = ChannelKeys(tuple(k for k in current.keys if k.id != key_id))
    _write_exclusive(data_dir / KEYS_FILE, keys.to_json(), replace=True)
    return keys


class SwitchReason(enum.StrEnum):
    """Why a channel put another stream on air."""

    #: The channel's first stream (nothing was on air).
    START = "start"
    #: The stream on air was reported dead, or its playlist could not be fetched.
    DEAD = "dead"
    #: Its media sequence stopped advancing for two target durations.
    STALLED = "stalled"
    #: Its segments kept failing (4xx/5xx, timeouts).
    ERRORS = "errors"
    #: Its playlist turned into a VOD or ended (``EXT-X-ENDLIST``).
    ENDED = "ended"
    #: Its stream was removed.
    REMOVED = "removed"
    #: It kept playing, but badly (slow segments, some errors, degraded health), and another
    #: stream scored clearly better.
    DEGRADED = "degraded"
    #: "live now" moved to another session, or to the off-air slate.
    SESSION = "session"


class ChannelSwitch(msgspec.Struct, frozen=True, kw_only=True):
    """A channel put another stream on air (published on ``channels.<session>.switched``)."""

    channel: str
    session: str | None
    #: The stream id taken off air (``None``: nothing was), and the one put on (``None``: the
    #: off-air slate).
    from_stream: str | None
    to_stream: str | None
    reason: SwitchReason
    #: Readable detail (never an upstream URL or credential).
    detail: str = ""
    at: datetime
