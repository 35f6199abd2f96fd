# Sourced by the page benchmarks: starts the release server ($REELSMITH_BIN, default
# target/release/reelsmith; the site in $SITE_ROOT, default target/site) on a free port with a
# fresh data directory, and makes one video that runs to completion with the local providers.
# Usage: finished_video <name> <prompt> <beats>. Sets $port and $id; the server and its data
# directory go away when the calling script exits.
finished_video() {
  local name=$1 prompt=$2 beats=$3 origin
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  origin="http://127.0.0.1:$port"
  data=$(mktemp -d "/tmp/reelsmith-$name.XXXXXX")
  RUST_LOG=error LEPTOS_SITE_ROOT=${SITE_ROOT:-target/site} "${REELSMITH_BIN:-./target/release/reelsmith}" \
    --addr "127.0.0.1:$port" --data-dir "$data" --auth none >/dev/null 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
  for _ in $(seq 100); do curl -fs "$origin/" >/dev/null && break; sleep 0.1; done
  id=$(curl -fsS -X POST "$origin/api/create_video" -H 'Accept: application/json' -H "Origin: $origin" \
    --data-urlencode "prompt=$prompt" --data "beats=$beats&auto_continue=on" | tr -d '"')
  for _ in $(seq 600); do
    if curl -fs -X POST "$origin/api/get_status" -H 'Accept: application/json' -H "Origin: $origin" \
        --data "video_id=$id&branch=main" | grep -q '"status":"completed"'; then
      return 0
    fi
    sleep 0.1
  done
  echo "$name: the video $id did not complete within 60 s" >&2
  return 1
}
