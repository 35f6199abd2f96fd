#!/usr/bin/env bash
# Time to interactive of the status page of a finished 3-beat video, in Chromium: starts the
# release server on a free port with a fresh data directory, makes the video, then loads its
# status page (end2end/bench/tti.mjs). SITE_ROOT picks another build's site (to compare two).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/finished-video.sh
finished_video tti "Time to interactive in three beats" 3
node end2end/bench/tti.mjs "http://127.0.0.1:$port/videos/$id" "${TTI_LOADS:-10}"
