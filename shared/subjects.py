"""Subject names, key builders and token rules: the only place a subject string is spelled.

Subjects and KV keys are dot-separated tokens (``2026.monaco.race``) so that watchers and
consumers can filter with NATS wildcards (``*`` one token, ``>`` the rest).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

SESSIONS_PREFIX: Final = "sessions"
DEADLETTER_PREFIX: Final = "deadletter"

#: Every subject that the ``SESSIONS`` stream stores.
SESSIONS_ALL: Final = f"{SESSIONS_PREFIX}.>"
JOBS_PREFIX: Final = "jobs.extract"
#: Every subject that the ``JOBS`` stream stores.
EXTRACT_JOBS_ALL: Final = f"{JOBS_PREFIX}.>"
#: Every subject that the ``DEADLETTER`` stream stores.
DEADLETTER_ALL: Final = f"{DEADLETTER_PREFIX}.>"
#: Public events for other programs (the ``PUBLIC`` stream): public views only, never a secret.
PUBLIC_PREFIX: Final = "public"
PUBLIC_ALL: Final = f"{PUBLIC_PREFIX}.>"
#: Every public stream event: ``public.streams.<season>.<event>.<kind>.<stream-id>``.
PUBLIC_STREAMS_ALL: Final = f"{PUBLIC_PREFIX}.streams.>"
#: Every public session event: ``public.sessions.<season>.<event>.<kind>``.
PUBLIC_SESSIONS_ALL: Final = f"{PUBLIC_PREFIX}.sessions.>"

#: Where an operator may republish history for a debugging consumer (``replay --republish``).
DEBUG_ALL: Final = "debug.>"

CHANNELS_PREFIX: Final = "channels"
#: Every channel switch (``ChannelSwitch``), of every channel.
CHANNEL_SWITCHES_ALL: Final = f"{CHANNELS_PREFIX}.>"

#: Core NATS request subject: ask every scheduler to re-read its calendar now.
SCHEDULER_RESYNC: Final = "control.scheduler.resync"
#: Core NATS request subject (one extractor of the queue group answers): re-resolve one stream
#: now, because its upstream refused the relay (``shared.control.ReresolveRequest``).
EXTRACTOR_RERESOLVE: Final = "control.extractor.reresolve"
#: The queue group the extractors answer control requests in (one answer per request).
EXTRACTOR_QUEUE: Final = "extractor"
#: Core NATS request subject (one extractor of the queue group answers): run the extractor
#: chain on one source now and report every candidate (``shared.sources.CheckRequest``).
EXTRACTOR_CHECK: Final = "control.extractor.check"
#: Prefix of the change events of sources (``sources.changes.<source-id>``).
SOURCE_CHANGES_PREFIX: Final = "sources.changes"
#: Every subject that the ``SOURCE_CHANGES`` stream stores.
SOURCE_CHANGES_ALL: Final = f"{SOURCE_CHANGES_PREFIX}.>"

#: One token: lower-case letters, digits, ``-`` and ``_``, at most 64 characters, starting with
#: a letter or digit. The pattern every token-shaped field uses (unanchored, to compose).
TOKEN: Final = r"[a-z0-9][a-z0-9_-]{0,63}"  # noqa: S105 - a pattern, not a secret
#: A whole value that is one token (for ``msgspec.Meta(pattern=...)``).
TOKEN_PATTERN: Final = f"^{TOKEN}$"
#: A whole session key, ``season.event.kind`` (``2026.monaco.race``).
SESSION_KEY_PATTERN: Final = rf"^\d{{4}}\.{TOKEN}\.{TOKEN}$"
#: A whole stream key, ``season.event.kind.stream-id`` (``2026.monaco.race.demo-plain``).
STREAM_KEY_PATTERN: Final = rf"^\d{{4}}\.{TOKEN}\.{TOKEN}\.{TOKEN}$"
#: The last token of a dead letter whose subject names no session (garbage on ``sessions.x``).
UNPARSED: Final = "unparsed"
#: Prefix of the subjects of the JetStream stream behind a KV bucket.
KV_PREFIX: Final = "$KV"

_TOKEN = re.compile(TOKEN_PATTERN)


class InvalidTokenError(ValueError):
    """A value cannot be used as one token of a subject or KV key."""


def slug(text: str) -> str:
    """Turn a human name (``São Paulo``, ``Emilia Romagna``) into a subject token (``sao-paulo``)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    token = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if not token:
        raise InvalidTokenError(f"{text!r} has no letters or digits to make a token from")
    return token[:64].rstrip("-")


def check_token(token: str) -> str:
    """Return ``token`` if it is a valid subject token, else raise :class:`InvalidTokenError`."""
    if not _TOKEN.match(token):
        raise InvalidTokenError(
            f"{token!r} is not a valid token: lower-case letters, digits, '-' and '_', "
            "at most 64 characters, starting with a letter or digit"
        )
    return token


def session_key(season: int, event: str, kind: str) -> str:
    """The key of one session, e.g. ``2026.monaco.race``; it prefixes its subjects and KV keys."""
    if not 1950 <= season <= 2999:
        raise InvalidTokenError(f"season {season} is out of range")
    return f"{season}.{check_token(event)}.{check_token(kind)}"


def check_session_key(key: str) -> str:
    """Validate a session key of the form ``season.event.kind``."""
    parts = key.split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        raise InvalidTokenError(f"{key!r} is not a session key like '2026.monaco.race'")
    return session_key(int(parts[0]), parts[1], parts[2])


def session_event(session: str, phase: str) -> str:
    """Subject of one life-cycle event: ``sessions.2026.monaco.race.live``."""
    return f"{SESSIONS_PREFIX}.{check_session_key(session)}.{check_token(phase)}"


def stream_key(session: str, stream_id: str) -> str:
    """KV key of one resolved stream in the ``streams`` bucket: ``2026.monaco.race.demo-plain``."""
    return f"{check_session_key(session)}.{check_token(stream_id)}"


def stream_keys(session: str | None = None) -> str:
    """KV watch filter for every stream of one session, or of all sessions."""
    return f"{check_session_key(session)}.*" if session else ">"


def extract_job(session: str, source_id: str) -> str:
    """Subject of the keep-fresh job of one source for one session."""
    return f"{JOBS_PREFIX}.{check_session_key(session)}.{check_token(source_id)}"


def channel_switched(channel: str) -> str:
    """Subject of a channel's switches: ``channels.<session key or live-now>.switched``."""
    if channel != "live-now":
        check_session_key(channel)
    return f"{CHANNELS_PREFIX}.{channel}.switched"


def source_changed(source_id: str) -> str:
    """Subject of a change to one source: ``sources.changes.demo-plain``."""
    return f"{SOURCE_CHANGES_PREFIX}.{check_token(source_id)}"


def source_streams(source_id: str) -> str:
    """KV watch filter for the streams of one source in every session."""
    return f"*.*.*.{check_token(source_id)}"


def kv_subjects(bucket: str) -> str:
    """Prefix of the subjects of a KV bucket's entries: ``$KV.streams.`` (key follows)."""
    return f"{KV_PREFIX}.{check_token(bucket)}."


def stream_feed(session: str | None = None) -> str:
    """The change feed of private stream records: the ``streams`` KV's own subjects, for the
    back end only (other programs follow :data:`PUBLIC_STREAMS_ALL`, which carries the public
    view; the NATS permissions refuse them these subjects).

    Each message is a ``StreamRecord`` (JSON), or a removal with header ``KV-Operation: DEL``
    (or ``PURGE``) and no body.
    """
    return f"{kv_subjects('streams')}{stream_keys(session)}"


def public_stream(session: str, stream_id: str) -> str:
    """Subject of one stream's public events: ``public.streams.2026.monaco.race.demo-plain``."""
    return f"{PUBLIC_PREFIX}.streams.{stream_key(session, stream_id)}"


def public_session(session: str) -> str:
    """Subject of one session's public events: ``public.sessions.2026.monaco.race``."""
    return f"{PUBLIC_PREFIX}.sessions.{check_session_key(session)}"


def session_of(subject: str) -> str | None:
    """The session key that a session-event or job subject names (``2026.monaco.race`` from
    ``sessions.2026.monaco.race.live`` or ``jobs.extract.2026.monaco.race.demo``), or ``None``
    when the subject is not one of those, well formed."""
    for prefix in (SESSIONS_PREFIX, JOBS_PREFIX):
        if not subject.startswith(f"{prefix}."):
            continue
        parts = subject.removeprefix(f"{prefix}.").split(".")
        if len(parts) != 4 or not _TOKEN.match(parts[3]):
            return None
        try:
            return check_session_key(".".join(parts[:3]))
        except InvalidTokenError:
            return None
    return None


def deadletter(consumer: str, session: str | None) -> str:
    """Subject of a message that failed for good: ``deadletter.extractor.2026.monaco.race``;
    with no session (its subject named none), ``deadletter.extractor.unparsed``."""
    tail = UNPARSED if session is None else check_session_key(session)
    return f"{DEADLETTER_PREFIX}.{check_token(consumer)}.{tail}"
