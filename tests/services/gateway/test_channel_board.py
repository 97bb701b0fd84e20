"""The gateway's channel board without a broker: switch events checked, newest wins, keys re-read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.gateway.channels import ChannelBoard, KeyRing, SwitchRejectedError, decode_switch
from shared.channels import ChannelSwitch, SwitchReason, rotate
from shared.codec import encode
from shared.subjects import channel_switched

AT = datetime(2026, 6, 7, 13, 0, tzinfo=UTC)
RACE = "2026.monaco.race"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def event(to: str | None, at: datetime = AT, channel: str = RACE,
          reason: SwitchReason = SwitchReason.START) -> ChannelSwitch:
    return ChannelSwitch(channel=channel, session=channel, from_stream=None, to_stream=to,
                         reason=reason, at=at)


def test_a_switch_is_read_only_from_its_own_subject_and_with_valid_ids() -> None:
    """A well-formed switch decodes; garbage, foreign subjects, non-token ids, naive times and
    unknown reasons are refused with a typed error that does not quote the payload."""
    assert decode_switch(channel_switched(RACE), encode(event("a"))) == event("a")
    bad = {
        "garbage": (channel_switched(RACE), b"{nope"),
        "foreign": (channel_switched("2026.monaco.qualifying"), encode(event("a"))),
        "url as id": (channel_switched(RACE), encode(event("https://cdn.secret.test/x"))),
        "naive time": (channel_switched(RACE), encode(event("a")).replace(b"Z", b"")),
        "reason": (channel_switched(RACE), encode(event("a")).replace(b'"start"', b'"why"')),
        "channel": (channel_switched(RACE), encode(event("a")).replace(RACE.encode(), b"../x")),
    }
    for name, (subject, data) in bad.items():
        with pytest.raises(SwitchRejectedError) as info:
            decode_switch(subject, data)
        assert "secret" not in str(info.value), name


def test_the_newest_switch_of_a_channel_wins(tmp_path: Path) -> None:
    """A switch older than the one on air changes nothing; a repeat is no change; the next one is."""
    board = ChannelBoard(KeyRing(None, tmp_path), "http://relay.test")
    assert board.switched(event("a"))
    assert not board.switched(event("a"))
    assert not board.switched(event("b", AT - timedelta(seconds=1)))
    assert board.switched(event(None, AT + timedelta(seconds=1), reason=SwitchReason.DEAD))
    change = board.change(RACE, has_streams=True)
    assert (change.on_air, change.switch_reason) == (None, SwitchReason.DEAD)
    assert change.channel_url == board.url(RACE)
    assert board.change(RACE, has_streams=False).channel_url is None
    assert board.unsent(RACE, has_streams=True) == change
    assert board.unsent(RACE, has_streams=True) is None  # already sent


def test_the_keys_file_is_re_read_and_an_unusable_one_keeps_the_last_good_keys(
        tmp_path: Path) -> None:
    """A rotation is taken up at the next look; a file that turns unreadable is not."""
    clock = Clock()
    ring = KeyRing(None, tmp_path, clock=clock)
    assert [k.id for k in ring.current().keys] == ["k1"]
    rotate(tmp_path)
    assert [k.id for k in ring.current().keys] == ["k1"]  # not looked at again yet
    clock.now += 5
    assert [k.id for k in ring.current().keys] == ["k1", "k2"]
    (tmp_path / "channel.keys").write_text("not json")
    clock.now += 5
    assert [k.id for k in ring.current().keys] == ["k1", "k2"]
    fixed = KeyRing("k9:0123456789abcdef0123", tmp_path / "elsewhere", clock=clock)
    assert [k.id for k in fixed.current().keys] == ["k9"]
    assert not (tmp_path / "elsewhere").exists()
