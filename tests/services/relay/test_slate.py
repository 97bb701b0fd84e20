"""The off-air slate: real, small H.264/AAC MPEG-TS segments, looped by the clock."""

from __future__ import annotations

import json
import subprocess

from services.relay.channel import SLATE_DIR, Slate


def test_the_slate_is_small_real_media() -> None:
    """Each committed segment is MPEG-TS with H.264 video and AAC audio, about 2 s, and the
    whole slate stays small in the repository."""
    files = sorted(SLATE_DIR.glob("*.ts"))
    assert len(files) >= 2
    assert sum(f.stat().st_size for f in files) < 100_000
    for path in files:
        probed = json.loads(subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=format_name,duration",
             "-of", "json", str(path)], capture_output=True, text=True, check=True, timeout=30).stdout)
        assert probed["format"]["format_name"] == "mpegts"
        assert {s["codec_name"] for s in probed["streams"]} == {"h264", "aac"}
        assert 1.9 < float(probed["format"]["duration"]) < 2.2


def test_the_slate_loops_with_the_clock() -> None:
    """The slate's window follows the wall clock (every replica serves the same), each wrap of
    the loop is a discontinuity, and only its own files can be asked for."""
    slate = Slate()
    count = len(slate.bodies)
    media = slate.media(1000.0)
    assert [s.seq for s in media.segments] == [497, 498, 499]
    assert [s.lines[-1] for s in media.segments] == [f"_slate/m/{n % count}.ts" for n in (497, 498, 499)]
    assert [s.discontinuity for s in media.segments] == [n % count == 0 for n in (497, 498, 499)]
    assert slate.body("0.ts") == slate.bodies[0]
    assert slate.body(f"{count}.ts") is None
    assert slate.body("../0.ts") is None
    assert slate.body("0.png") is None
