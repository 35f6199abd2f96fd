#!/usr/bin/env bash
# Time to interactive of the status page of a finished 3-beat video, in Chromium: starts the
# release server on a free port with a fresh data directory, makes the video, then loads its
# status page (end2end/bench/tti.mjs). SITE_ROOT picks another build's site (to compare two).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${REELSMITH_BIN:-./target/release/reelsmith}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data=$(mktemp -d /tmp/reelsmith-tti.XXXXXX)
RUST_LOG=error LEPTOS_SITE_ROOT=${SITE_ROOT:-target/site} "$bin" --addr 127.0.0.1:$port --data-dir "$data" --auth none >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
id=$(curl -fs -X POST "http://127.0.0.1:$port/api/create_video" \
  -H 'Accept: application/json' -H "Origin: http://127.0.0.1:$port" --data 'prompt=Time+to+interactive+in+three+beats&beats=3&auto_continue=on' | tr -d '"')
for _ in $(seq 600); do
  curl -fs -X POST "http://127.0.0.1:$port/api/get_status" -H 'Accept: application/json' -H "Origin: http://127.0.0.1:$port" \
    --data "video_id=$id&branch=main" | grep -q '"status":"completed"' && break
  sleep 0.1
done
node end2end/bench/tti.mjs "http://127.0.0.1:$port/videos/$id" "${TTI_LOADS:-10}"
