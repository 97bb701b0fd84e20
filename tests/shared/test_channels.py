"""Channel URLs: long-lived, revocable, one channel each; the keys file made once."""

from __future__ import annotations

from multiprocessing import Pool
from pathlib import Path

import pytest

from shared.channels import (
    LIVE_NOW,
    ChannelKeys,
    ChannelKeysError,
    ChannelTokenError,
    load_channel_keys,
    revoke,
    rotate,
)
from shared.subjects import InvalidTokenError, channel_switched

SESSION = "2026.monaco.race"


def test_a_channel_url_verifies_for_its_channel_only(tmp_path: Path) -> None:
    """A token signed for one session is refused for another and for live-now."""
    keys = load_channel_keys(None, tmp_path)
    token = keys.token(SESSION)
    assert keys.verify(SESSION, token) == keys.keys[-1].id
    with pytest.raises(ChannelTokenError, match="bad signature"):
        keys.verify("2026.monaco.sprint", token)
    with pytest.raises(ChannelTokenError, match="bad signature"):
        keys.verify(LIVE_NOW, token)
    url = keys.master_url("http://relay:8081/", LIVE_NOW)
    assert url.startswith("http://relay:8081/c/live-now/k1.")
    assert url.endswith("/master.m3u8")


def test_rotation_keeps_old_links_until_their_key_is_revoked(tmp_path: Path) -> None:
    """After a rotation the new key signs and the old links still play; revoking the old key
    refuses them, and the last key cannot be revoked."""
    old = load_channel_keys(None, tmp_path).token(SESSION)
    rotated = rotate(tmp_path)
    new = rotated.token(SESSION)
    assert new != old
    assert new.startswith("k2.")
    assert load_channel_keys(None, tmp_path).verify(SESSION, old) == "k1"
    after = revoke(tmp_path, "k1")
    with pytest.raises(ChannelTokenError, match="revoked"):
        after.verify(SESSION, old)
    assert load_channel_keys(None, tmp_path).verify(SESSION, new) == "k2"
    with pytest.raises(ChannelKeysError, match="no channel key"):
        revoke(tmp_path, "k1")
    with pytest.raises(ChannelKeysError, match="no channel key:"):
        revoke(tmp_path, "k2")


def test_keys_from_a_setting_and_readable_errors() -> None:
    keys = ChannelKeys.from_setting("a1:0123456789abcdef0123, b2:fedcba98765432100123")
    assert keys.token(SESSION).startswith("b2.")
    with pytest.raises(ChannelKeysError, match="id:secret"):
        ChannelKeys.from_setting("nocolon")
    with pytest.raises(ChannelKeysError, match="at least 16"):
        ChannelKeys.from_setting("a1:short")
    with pytest.raises(ChannelKeysError, match="duplicate"):
        ChannelKeys.from_setting("a1:0123456789abcdef0123,a1:0123456789abcdef0124")


@pytest.mark.parametrize("token", ["", "k1", "k1.", "K1.aaaaaaaaaaaaaaaaaaaaaa", "k1.short",
                                   "k1." + "a" * 22 + "/x"])
def test_malformed_tokens_are_refused(tmp_path: Path, token: str) -> None:
    with pytest.raises(ChannelTokenError):
        load_channel_keys(None, tmp_path).verify(SESSION, token)


def test_a_channel_that_is_not_a_session_is_refused(tmp_path: Path) -> None:
    keys = load_channel_keys(None, tmp_path)
    with pytest.raises(InvalidTokenError):
        keys.token("../etc")
    with pytest.raises(InvalidTokenError):
        channel_switched("not a key")
    assert channel_switched(LIVE_NOW) == "channels.live-now.switched"
    assert channel_switched(SESSION) == "channels.2026.monaco.race.switched"


def _first_token(folder: str) -> str:
    return load_channel_keys(None, Path(folder)).token(SESSION)


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    """Eight processes make the keys file of a fresh folder at once: all sign alike."""
    folders = [str(tmp_path / str(n)) for n in range(20)]
    with Pool(8) as pool:
        tokens = pool.map(_first_token, [f for f in folders for _ in range(8)])
    for n in range(20):
        assert len(set(tokens[n * 8:(n + 1) * 8])) == 1
