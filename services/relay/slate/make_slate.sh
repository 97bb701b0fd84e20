#!/usr/bin/env bash
# Regenerates the channels' off-air slate (committed; run only to change it): three 2 s MPEG-TS
# segments (H.264 + AAC, 320x180) of a still card, which the relay loops between sessions.
set -euo pipefail
cd "$(dirname "$0")"
font=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ffmpeg -loglevel error -y \
  -f lavfi -i "color=c=0x15151e:size=320x180:rate=25" \
  -f lavfi -i "anullsrc=channel_layout=stereo:sample_rate=48000" \
  -t 6 \
  -vf "drawtext=fontfile=${font}:text='OFF AIR':x=(w-tw)/2:y=h*0.32:fontsize=30:fontcolor=white,drawtext=fontfile=${font}:text='Slipstream - back when a session is live':x=(w-tw)/2:y=h*0.62:fontsize=11:fontcolor=0xb0b0c0" \
  -c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 \
  -b:v 60k -maxrate 120k -bufsize 120k \
  -c:a aac -b:a 32k -ac 2 -ar 48000 \
  -f hls -hls_time 2 -hls_list_size 0 -hls_playlist_type vod \
  -hls_segment_filename "$tmp/%d.ts" "$tmp/vod.m3u8"
cp "$tmp"/[0-9].ts .
ls -l ./*.ts
