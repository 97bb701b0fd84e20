"""The demo's feeds in step: the same looping content as several live feeds, each published a
fixed number of seconds after the live one (as a world feed, an onboard and a data channel
reach viewers with different delays), one of them without ``EXT-X-PROGRAM-DATE-TIME``.

A feed ``delay`` seconds behind serves at ``now`` exactly what the live stream served at
``now - delay``: the same segments with the same program date-times (the moment they were
filmed), only later. Their windows are long (a minute), so that players of all of them can show
one common moment. Pure data and functions of (feed, time), like :mod:`services.demo.live`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final


@dataclass(frozen=True, slots=True)
class Feed:
    """One delayed feed of the demo content."""

    name: str
    title: str
    #: Seconds after the live stream this feed publishes each segment.
    delay: float
    #: Whether its playlists carry ``EXT-X-PROGRAM-DATE-TIME``.
    dates: bool = True

    def time(self, now: datetime) -> datetime:
        """The moment of the live stream this feed shows at ``now``."""
        return now - timedelta(seconds=self.delay)


#: Segments in a feed's window: a minute of 2 s segments.
FEED_WINDOW: Final = 30
#: The feeds, by name. The one without program date-times is the undelayed one: time stamped
#: from when its segments appear is then the true time, which a relay can check.
FEEDS: Final = {f.name: f for f in (
    Feed("onboard", "Onboard camera: no program date-time, 0 s behind", 0.0, dates=False),
    Feed("world", "World feed: 6 s behind", 6.0),
    Feed("data", "Data channel: 12 s behind", 12.0),
)}
