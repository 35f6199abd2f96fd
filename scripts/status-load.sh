#!/usr/bin/env bash
# HTTP load test of the status page: starts the release server on a free port with a fresh data
# directory, makes one completed video, then runs wrk with 50 connections against its status page.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data=$(mktemp -d /tmp/reelsmith-load.XXXXXX)
RUST_LOG=error ./target/release/reelsmith --addr 127.0.0.1:$port --data-dir "$data" --auth none >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
id=$(curl -fs -X POST "http://127.0.0.1:$port/api/create_video" \
  -H 'Accept: application/json' -H "Origin: http://127.0.0.1:$port" --data 'prompt=A+load+test+of+eight+beats&beats=8&auto_continue=on' | tr -d '"')
for _ in $(seq 600); do
  curl -fs -X POST "http://127.0.0.1:$port/api/get_status" -H 'Accept: application/json' -H "Origin: http://127.0.0.1:$port" \
    --data "video_id=$id&branch=main" | grep -q '"status":"completed"' && break
  sleep 0.1
done
out=$(wrk -t2 -c50 -d${LOAD_SECONDS:-10}s --latency "http://127.0.0.1:$port/videos/$id")
echo "$out" | awk '/Requests\/sec/ {print "status_page_requests_per_s: " $2 " req/s"}
  $1=="50%" {print "status_page_latency_p50: " $2}
  $1=="99%" {print "status_page_latency_p99: " $2}
  /Non-2xx/ {print "status_page_non_2xx: " $4}'
