"""The checks the gallery's CDNs make, as real CDNs of each kind make them; pure functions of a
request's headers, query and the time, each raising :class:`Refused` (a 403) when violated.

* hotlink protection: the ``Referer`` must come from the site (or a given page of it);
* signed URLs: nginx ``secure_link`` (``md5`` + ``expires``), Akamai EdgeAuth (``hdnts=exp=~acl=
  ~hmac=``) and plain HMAC tokens with an expiry, minted by the pages and the token API;
* bot filters: library User-Agents are refused, and a cross-origin player's ``Origin`` required.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from litestar.exceptions import PermissionDeniedException

#: The loopback names the gallery plays two "sites" with: a page served under one embeds a
#: player or a CDN under the other, which makes the request cross-site for a browser.
OTHER_NAME: Final = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}

#: User-Agents of HTTP libraries and downloaders, as CDN bot filters list them. ffmpeg's
#: ``Lavf`` is not here: players fetch through the relay, which presents a browser's.
LIBRARY_AGENTS: Final = re.compile(
    r"python-httpx|python-requests|python-urllib|aiohttp|yt-dlp|youtube-dl|streamlink|"
    r"^curl/|^wget/|go-http-client|okhttp|libwww-perl|^java/|scrapy|node-fetch|axios/|"
    r"headlesschrome", re.IGNORECASE)


class Refused(PermissionDeniedException):
    """The CDN refuses the request (HTTP 403), saying which check failed."""


def other_netloc(netloc: str) -> str:
    """The same server under the gallery's other loopback name (``127.0.0.1:8090`` <->
    ``localhost:8090``); an unknown name stays itself (the pages then work on one site)."""
    host, sep, port = netloc.rpartition(":")
    if not sep or not port.isdigit():
        host, port = netloc, ""
    other = OTHER_NAME.get(host.lower(), host)
    return f"{other}:{port}" if port else other


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL, or ``""`` when it has none."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def sign(secret: bytes, *parts: object) -> str:
    """A URL-safe HMAC-SHA256 of ``parts`` (22 characters)."""
    message = "\0".join(str(p) for p in parts).encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# Referer and Origin.
def referer_from(referer: str, allowed_origins: Iterable[str], what: str = "this site") -> None:
    """Hotlink protection: a ``Referer`` from one of ``allowed_origins``."""
    if not referer:
        raise Refused(f"hotlink protection: no Referer (only {what} may play this stream)")
    if origin_of(referer) not in set(allowed_origins):
        raise Refused(f"hotlink protection: Referer {origin_of(referer) or referer!r} is not {what}")


def referer_under(referer: str, prefix: str) -> None:
    """The ``Referer`` is a page under ``prefix`` (a full URL: origin and path)."""
    if not referer.startswith(prefix):
        raise Refused(f"this resource plays only inside {urlsplit(prefix).path}* (Referer)")


def referer_is(referer: str, expected: str) -> None:
    """The ``Referer`` is exactly ``expected`` (the previous hop of an embed chain)."""
    if not _same(referer, expected):
        raise Refused(f"this frame must be opened by {urlsplit(expected).path} (Referer)")


def origin_is(origin: str, expected: str) -> None:
    """The ``Origin`` a cross-origin player sends is ``expected`` (the embedding site)."""
    if not origin:
        raise Refused("no Origin: only the site's player may load this stream")
    if origin != expected:
        raise Refused(f"Origin {origin!r} may not load this stream")


def browser_agent(user_agent: str) -> None:
    """Bot filter: refuse an empty or library User-Agent."""
    if not user_agent.strip():
        raise Refused("bot filter: no User-Agent")
    match = LIBRARY_AGENTS.search(user_agent)
    if match:
        raise Refused(f"bot filter: User-Agent {match[0]!r} is not a browser")


# Signed URLs.
def secure_link(secret: bytes, prefix: str, expires: int) -> str:
    """nginx ``secure_link_md5 "$secure_link_expires$prefix $secret"``: base64url MD5."""
    raw = hashlib.md5(f"{expires}{prefix} {secret.hex()}".encode(), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def check_secure_link(secret: bytes, prefix: str, md5: str, expires: str, now: float) -> None:
    if not expires.isdigit() or not md5:
        raise Refused("secure link: md5 and expires are required")
    if not _same(md5, secure_link(secret, prefix, int(expires))):
        raise Refused("secure link: bad signature")
    if int(expires) <= now:
        raise Refused("secure link: expired")


def edgeauth(secret: bytes, acl: str, expires: int) -> str:
    """An Akamai EdgeAuth token: ``exp=<unix>~acl=<path>*~hmac=<hex sha256>``."""
    body = f"exp={expires}~acl={acl}"
    mac = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}~hmac={mac}"


def check_edgeauth(secret: bytes, token: str, path: str, now: float) -> None:
    fields = dict(part.partition("=")[::2] for part in token.split("~"))
    exp, acl, mac = fields.get("exp", ""), fields.get("acl", ""), fields.get("hmac", "")
    if not exp.isdigit() or not acl or not mac:
        raise Refused("edgeauth: hdnts token missing or malformed")
    body = f"exp={exp}~acl={acl}"
    if not _same(mac, hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()):
        raise Refused("edgeauth: bad hmac")
    if int(exp) <= now:
        raise Refused("edgeauth: token expired")
    if not path.startswith(acl.rstrip("*")):
        raise Refused("edgeauth: path outside the token's acl")


def timed_token(secret: bytes, scope: str, expires: int) -> str:
    return sign(secret, "token", scope, expires)


def check_timed_token(secret: bytes, scope: str, token: str, expires: str, now: float) -> None:
    if not token or not expires.isdigit():
        raise Refused("token and expires are required")
    if not _same(token, timed_token(secret, scope, int(expires))):
        raise Refused("invalid token")
    if int(expires) <= now:
        raise Refused("token expired")
