"""The relay service. rewrites HLS playlists from the streams KV and relays segments to viewers."""
