"""``slipstream channels rotate|revoke KEY_ID|list``: the keys that sign channel URLs.

Channel URLs (``/c/<channel>/<key-id>.<sig>/master.m3u8``) do not expire, so IPTV players can keep
them; they are revoked by removing the key that signed them. ``rotate`` adds a new signing key
(URLs signed before keep working), ``revoke`` removes one (every URL it signed is refused by each
relay within a second), ``list`` shows the keys and the "live now" channel URL of the newest.
Keys live in ``<data>/channel.keys``; when the ``relay.channel_keys`` setting gives them, that
setting is the place to change them instead.
"""

from __future__ import annotations

import sys
from typing import TextIO

from shared.channels import LIVE_NOW, ChannelKeysError, load_channel_keys, revoke, rotate
from shared.settings import Settings


def run(settings: Settings, command: str, key_id: str | None, out: TextIO = sys.stdout) -> int:
    data = settings.data_path
    configured = settings.relay.channel_keys
    if command in ("rotate", "revoke") and configured:
        print("slipstream channels: the channel keys come from the relay.channel_keys setting "
              "(SLIPSTREAM_RELAY_CHANNEL_KEYS): change them there", file=sys.stderr)
        return 1
    try:
        if command == "rotate":
            keys = rotate(data)
            out.write(f"new signing key {keys.keys[-1].id}; channel URLs signed by "
                      f"{', '.join(k.id for k in keys.keys[:-1])} keep working until revoked\n")
        elif command == "revoke":
            keys = revoke(data, key_id or "")
            out.write(f"revoked {key_id}: every channel URL it signed is refused from now on "
                      f"(IPTV players need the new M3U)\n")
        else:
            keys = load_channel_keys(configured, data)
    except ChannelKeysError as exc:
        print(f"slipstream channels: {exc}", file=sys.stderr)
        return 1
    for key in keys.keys:
        role = "signs and verifies" if key is keys.keys[-1] else "verifies"
        out.write(f"  {key.id:<16} {role}\n")
    out.write(f"live now: {keys.master_url(settings.relay_public_url, LIVE_NOW)}\n")
    return 0
