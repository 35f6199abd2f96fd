#!/usr/bin/env bash
# Builds the release app without cargo-leptos: the server binary, the hydrate WASM (wasm-bindgen,
# then npm's wasm-opt), the CSS and the public files, into target/release and target/site.
# The file names match what the pages ask for: /pkg/reelsmith.{js,wasm,css} (.cargo/config.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
SITE=target/site
PKG=$SITE/pkg
NEXT=$SITE/.pkg.next

# The server builds while the WASM side does (the wasm-bindgen CLI, if missing, then the WASM
# library): on 2 cores each build alone leaves a core idle in its serial stretches (build
# scripts, the last crates, linking), so together they finish sooner than one after the other.
# The server's build is the longer one, so the WASM side runs niced: it takes the cores the server
# leaves idle instead of half of them.
# `--with-tests` (make test): the test binaries build after the server, in the same job. With
# the WASM side niced, that side finished last on a new machine (it builds the CLI first), so
# in this mode the server-and-tests job runs niced and the WASM side takes the cores first.
wasm_nice=10
if [ "${1:-}" = --with-tests ]; then
  wasm_nice=0
  nice -n 10 bash -c 'cargo build --release --features ssr --bin reelsmith && cargo test --release --features ssr --no-run' &
else
  cargo build --release --features ssr --bin reelsmith &
fi
server=$!
trap 'pkill -P $server 2>/dev/null || true; kill $server 2>/dev/null || true' EXIT
bindgen=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/"/,"",$3); print $3; exit}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q "$bindgen"; then
  # A debug build of the one binary we run, without debug info and without the TLS of its test
  # runner's HTTP client: 73 CPU-seconds (39 s on 2 cores) against 118 for a debug build of all
  # three binaries, and 4.4 CPU-minutes for a release build; each writes the same bytes. It takes
  # 2 s per site build, not 0.4.
  echo "installing wasm-bindgen-cli $bindgen (the version of the wasm-bindgen crate)"
  CARGO_PROFILE_DEV_DEBUG=0 nice -n $wasm_nice cargo install wasm-bindgen-cli --version "$bindgen" --debug --force \
    --no-default-features --bin wasm-bindgen
fi
nice -n $wasm_nice cargo build --lib --target wasm32-unknown-unknown --profile wasm-release --no-default-features --features hydrate

rm -rf "$NEXT"
mkdir -p "$NEXT"
wasm-bindgen --target web --no-typescript --out-dir "$NEXT" --out-name reelsmith \
  target/wasm32-unknown-unknown/wasm-release/reelsmith.wasm
# The hydration script loads /pkg/<name>.wasm explicitly, so the _bg suffix is dropped.
mv "$NEXT/reelsmith_bg.wasm" "$NEXT/reelsmith.wasm"
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
  "$NEXT/reelsmith.wasm" -o "$NEXT/reelsmith.wasm"
cp style/main.css "$NEXT/reelsmith.css"
cp -r public/. "$SITE/"
rm -rf "$PKG"
mv "$NEXT" "$PKG"
wait $server
trap - EXIT
echo "site: $(du -b "$PKG/reelsmith.wasm" | cut -f1) bytes of WASM ($(gzip -9c "$PKG/reelsmith.wasm" | wc -c) gzipped)"
