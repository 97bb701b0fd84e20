"""What the gateway shows, from the KV mirrors: session statuses, public stream views with
signed relay URLs, what is live, and the M3U and ICS exports. Pure: no web framework here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from services.gateway.channels import ChannelBoard
from shared.feed import ChannelChanged, SessionView
from shared.kvmirror import KvMirror, Lost
from shared.relay_urls import Signer
from shared.sessions import Phase, SessionEvent, SessionStatus, status_of
from shared.streams import Health, StreamRecord, StreamView, public_view

_FAR = datetime.max.replace(tzinfo=UTC)
PLAYABLE = frozenset({Health.OK, Health.DEGRADED})
#: The health detail of a stream lost behind the system's back (its bucket deleted or purged),
#: shown without a playback URL for ``gateway.reresolve_window`` seconds or until it is back.
RERESOLVING = "re-resolving: the stream registry lost this stream"


@dataclass
class Views:
    """The gateway's read model over the ``sessions`` and ``streams`` buckets."""

    sessions: KvMirror[SessionEvent]
    streams: KvMirror[StreamRecord]
    signer: Signer
    relay_url: str
    url_ttl: float
    channels: ChannelBoard

    def session_statuses(self, season: int | None = None) -> list[SessionStatus]:
        statuses = [status_of(event, revision) for event, revision in self.sessions.values.values()
                    if season is None or event.session.season == season]
        return sorted(statuses, key=lambda s: (s.session.start or _FAR, s.session.key))

    def session(self, key: str) -> SessionStatus | None:
        found = self.sessions.values.get(key)
        return status_of(*found) if found else None

    def with_streams(self) -> set[str]:
        """The sessions that have at least one stream (so a channel to play)."""
        keys = [*self.streams.values, *self.streams.lost]
        return {key.rpartition(".")[0] for key in keys}

    def session_views(self, season: int | None = None) -> list[SessionView]:
        """Every session's public view (status and channel), by start time."""
        with_streams = self.with_streams()
        return [self.channels.view(s, s.session.key in with_streams)
                for s in self.session_statuses(season)]

    def session_view(self, status: SessionStatus) -> SessionView:
        return self.channels.view(status, status.session.key in self.with_streams())

    def channel_update(self, session: str) -> ChannelChanged | None:
        """``session``'s channel fields, when its feed clients have not been sent them yet."""
        return self.channels.unsent(session, session in self.with_streams())

    def view(self, record: StreamRecord, revision: int) -> StreamView:
        """The public view of one record, with a freshly signed playback URL."""
        url = self.signer.master_url(self.relay_url, record.session, record.id, self.url_ttl)
        return public_view(record, playback_url=url, revision=revision)

    @staticmethod
    def reresolving(lost: Lost[StreamRecord]) -> StreamView:
        """A stream being re-resolved: shown as resolving, with no playback URL (the old one
        may point at a source that is no longer what the registry says)."""
        view = public_view(lost.value, playback_url="", revision=lost.revision)
        return msgspec.structs.replace(view, health=Health.RESOLVING, health_detail=RERESOLVING)

    def stream_views(self, session: str | None = None) -> list[StreamView]:
        views = [self.view(record, revision)
                 for key, (record, revision) in self.streams.values.items()
                 if session is None or key.startswith(f"{session}.")]
        views += [self.reresolving(lost) for key, lost in self.streams.lost.items()
                  if session is None or key.startswith(f"{session}.")]
        return sorted(views, key=lambda v: (v.session, v.health is not Health.OK, v.source))

    def live(self) -> list[SessionStatus]:
        return [s for s in self.session_statuses() if s.phase is Phase.LIVE]


def m3u(sessions: Iterable[SessionStatus], views: Iterable[StreamView]) -> str:
    """An M3U playlist of the playable streams of live sessions (VLC, Kodi, Jellyfin, Threadfin)."""
    by_key = {s.session.key: s for s in sessions}
    lines = ["#EXTM3U"]
    for view in views:
        status = by_key.get(view.session)
        if status is None or view.health not in PLAYABLE:
            continue
        name = f"{status.session.event} {status.session.name} - {view.source}".replace(",", " ")
        group = status.session.event.replace('"', "'")
        lines.append(f'#EXTINF:-1 tvg-id="{view.session}.{view.id}" group-title="{group}",{name}')
        lines.append(view.playback_url)
    return "\n".join(lines) + "\n"


def _ics_text(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n"))


def _ics_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def ics(sessions: Iterable[SessionStatus], now: datetime) -> str:
    """An iCalendar (RFC 5545) of every session with a known time; cancelled ones marked so."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Slipstream//Sessions//EN",
             "CALSCALE:GREGORIAN", "X-WR-CALNAME:Slipstream F1 sessions"]
    for status in sessions:
        s = status.session
        if s.start is None:
            continue
        lines += ["BEGIN:VEVENT", f"UID:{s.key}@slipstream", f"DTSTAMP:{_ics_time(now)}",
                  f"DTSTART:{_ics_time(s.start)}", f"DTEND:{_ics_time(s.end or s.start)}",
                  f"SUMMARY:{_ics_text(f'{s.event}: {s.name}')}",
                  f"LOCATION:{_ics_text(', '.join(p for p in (s.circuit, s.country) if p))}"]
        if status.phase is Phase.CANCELLED:
            lines.append("STATUS:CANCELLED")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"
