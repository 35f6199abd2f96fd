#!/usr/bin/env bash
# HTTP load test of the status page: starts the release server on a free port with a fresh data
# directory, makes one completed video, then runs wrk with 50 connections against its status page.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
. scripts/finished-video.sh
finished_video load "A load test of eight beats" 8
out=$(wrk -t2 -c50 -d${LOAD_SECONDS:-10}s --latency "http://127.0.0.1:$port/videos/$id")
echo "$out" | awk '/Requests\/sec/ {print "status_page_requests_per_s: " $2 " req/s"}
  $1=="50%" {print "status_page_latency_p50: " $2}
  $1=="99%" {print "status_page_latency_p99: " $2}
  /Non-2xx/ {print "status_page_non_2xx: " $4}'
