"""Relay URLs: minted by the gateway (the master playlist a viewer gets) and the relay (every URI
inside the playlists it serves), checked by the relay. The only place their shape is spelled.

    /s/<season>.<event>.<kind>/<stream-id>/<expiry>.<signature>/master.m3u8
    /s/<season>.<event>.<kind>/<stream-id>/<expiry>.<signature>/<kind>/<ref><.ext>

The signature (HMAC-SHA256, truncated to 128 bits) covers the stream and the expiry, so it
authorises the whole prefix once: a 1,000-segment playlist costs one signature, not 1,000. The
``ref`` of a resource is an opaque keyed hash of its upstream URL that the relay resolves from
the playlists it fetched itself; nothing upstream (host, path, query, credential) appears.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from shared.subjects import check_session_key, check_token

SIG_BYTES: Final = 16
#: A multiple of 3, so each ref is a whole number of base64 characters (:meth:`Signer.refs`).
REF_BYTES: Final = 9
_TOKEN: Final = re.compile(r"^([0-9a-z]{1,10})\.([A-Za-z0-9_-]{22})$")


class RelayTokenError(Exception):
    """A relay URL's token is malformed, forged (``expired=False``) or expired."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


def load_secret(value: str | None, data_dir: Path) -> bytes:
    """The signing secret: the configured one, else one kept in the data folder (made once).

    The relay and the gateway may both make it at the same moment: each writes its own
    temporary file in full and links it to ``relay.secret``, which only the first link creates
    (an existing name is never replaced), then every process reads back whatever is there. So
    all agree on one secret, and no process ever reads a file half written."""
    if value:
        return value.encode()
    return kept_secret(data_dir / "relay.secret", "or set the relay secret")


def kept_secret(path: Path, hint: str = "") -> bytes:
    """A secret kept in ``path``, made once by whichever process comes first (see
    :func:`load_secret`)."""
    if not path.exists():
        _make_secret(path)
    secret = path.read_bytes().strip()
    if not secret:
        raise ValueError(f"{path} is empty: delete it (a new secret is made) {hint}".rstrip())
    return secret


def _make_secret(path: Path) -> None:
    """Create ``path`` holding a fresh secret (mode 0600), unless it exists already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_urlsafe(32).encode())
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # atomic and exclusive: fails if the name exists
        except FileExistsError:
            return  # another process made it first: theirs is the secret
    finally:
        os.unlink(tmp)
    with contextlib.suppress(OSError):  # the new name survives a crash too
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Signer:
    """Signs and checks relay URL prefixes with one secret."""

    secret: bytes

    def _sig(self, session: str, stream_id: str, expiry: int) -> str:
        mac = hmac.new(self.secret, f"{session}/{stream_id}/{expiry}".encode(), hashlib.sha256)
        return _b64(mac.digest()[:SIG_BYTES])

    def prefix(self, session: str, stream_id: str, ttl: float, now: float | None = None) -> str:
        """``/s/<session>/<stream>/<token>`` valid for ``ttl`` seconds."""
        check_session_key(session)
        check_token(stream_id)
        expiry = int((now if now is not None else time.time()) + ttl)
        return f"/s/{session}/{stream_id}/{_base36(expiry)}.{self._sig(session, stream_id, expiry)}"

    def master_url(self, base: str, session: str, stream_id: str, ttl: float) -> str:
        """The playback URL a viewer gets for one stream."""
        return f"{base.rstrip('/')}{self.prefix(session, stream_id, ttl)}/master.m3u8"

    def verify(self, session: str, stream_id: str, token: str, now: float | None = None) -> int:
        """Check a token; return its expiry, or raise :class:`RelayTokenError`."""
        match = _TOKEN.match(token)
        if match is None:
            raise RelayTokenError("malformed token")
        expiry = int(match[1], 36)
        if not hmac.compare_digest(match[2], self._sig(session, stream_id, expiry)):
            raise RelayTokenError("bad signature")
        if expiry < (now if now is not None else time.time()):
            raise RelayTokenError("expired", expired=True)
        return expiry

    def ref(self, url: str) -> str:
        """The opaque reference of an upstream URL (keyed hash: not reversible, not guessable)."""
        digest = hashlib.blake2b(url.encode(), key=self.secret[:64], digest_size=REF_BYTES)
        return _b64(digest.digest())

    def refs(self, urls: list[str]) -> list[str]:
        """``[self.ref(url) for url in urls]``, at a third of the cost: the keyed hash is set up
        once and copied, and the digests are encoded together (9 bytes are 12 characters, so
        each one's characters are its own)."""
        if not urls:
            return []
        keyed = hashlib.blake2b(key=self.secret[:64], digest_size=REF_BYTES)
        copy = keyed.copy
        encoded = "\n".join(urls).encode().split(b"\n")  # one encode for all
        if len(encoded) != len(urls):  # a URL with a line break in it (never from a playlist)
            encoded = [url.encode() for url in urls]
        digests = []
        for data in encoded:
            h = copy()
            h.update(data)
            digests.append(h.digest())
        text = base64.urlsafe_b64encode(b"".join(digests)).decode()
        width = REF_BYTES * 4 // 3
        return [text[i:i + width] for i in range(0, len(text), width)]


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
