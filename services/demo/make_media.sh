#!/usr/bin/env bash
# Regenerates the demo origin's looping media (committed; run only to change it).
# Two renditions of a 16 s test pattern with a visible clock, 2 s segments, AAC audio.
set -euo pipefail
cd "$(dirname "$0")/media"
font=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
seconds=16
render() {  # name width height video_bitrate fontsize
  local name=$1 w=$2 h=$3 vb=$4 fs=$5
  rm -rf "$name" && mkdir -p "$name"
  ffmpeg -loglevel error -y \
    -f lavfi -i "testsrc2=size=${w}x${h}:rate=25" \
    -f lavfi -i "sine=frequency=880:beep_factor=4:sample_rate=48000" \
    -t "$seconds" \
    -vf "drawtext=fontfile=${font}:text='SLIPSTREAM DEMO ${name}':x=(w-tw)/2:y=h*0.08:fontsize=${fs}:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=6,drawtext=fontfile=${font}:text='%{pts\:hms}':x=(w-tw)/2:y=h*0.75:fontsize=$((fs*2)):fontcolor=yellow:box=1:boxcolor=black@0.6:boxborderw=8" \
    -c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 \
    -b:v "$vb" -maxrate "$vb" -bufsize "$vb" \
    -c:a aac -b:a 64k -ac 2 -ar 48000 \
    -f hls -hls_time 2 -hls_list_size 0 -hls_playlist_type vod \
    -hls_segment_filename "$name/%d.ts" "$name/vod.m3u8"
}
render 360p 640 360 450k 22
render 180p 320 180 160k 12
du -sh .
