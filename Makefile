# Reelsmith — `make run` serves the app, `make test` runs every test. Both install what is missing.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

CARGO_LEPTOS_VERSION := 0.3.10
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/{getline; gsub(/"/,"",$$3); print $$3; exit}' Cargo.lock)
PG_BIN := $(shell ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
# Fixed ports for the throw-away servers, below Linux's ephemeral range (32768-60999): a port
# inside it can be held by any outgoing connection's local end (the PostgreSQL suites open
# hundreds), and the server then cannot bind it.
PG_PORT ?= 25432
SCALE_PG_PORT ?= 25433
S3_PORT ?= 25434
# npm's wasm-opt (binaryen 132) first: Debian's makes a bundle that does not hydrate.
# cargo installs into $CARGO_HOME/bin (~/.cargo/bin unless CARGO_HOME says otherwise).
export PATH := $(CURDIR)/end2end/node_modules/.bin:$(or $(CARGO_HOME),$(HOME)/.cargo)/bin:$(PATH)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: setup-apt setup-apt-run setup-run run test dev build setup bench bench-peer check clippy s3venv test-unit test-postgres test-scaleout test-e2e clean-data

run: setup-run build
	./target/release/reelsmith

## Live reload while developing; the only target that needs cargo-leptos (installed on first use).
dev: setup-run
	@if ! cargo leptos --version 2>/dev/null | grep -q "$(CARGO_LEPTOS_VERSION)"; then
	  echo "installing cargo-leptos $(CARGO_LEPTOS_VERSION) (about 11 minutes on 2 cores)"
	  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
	    cargo install cargo-leptos --version $(CARGO_LEPTOS_VERSION) --locked --features no_downloads
	fi
	@if ! wasm-bindgen --version 2>/dev/null | grep -q "$(WASM_BINDGEN_VERSION)"; then
	  CARGO_PROFILE_DEV_DEBUG=0 cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --debug --force \
	    --no-default-features --bin wasm-bindgen
	fi
	cargo leptos watch

## The release server and site, with plain cargo + wasm-bindgen + wasm-opt (no cargo-leptos).
build:
	scripts/build-site.sh

## setup: idempotent; each step is skipped when already satisfied. `setup-run` is what building
## and serving need; `setup` adds what the tests and benchmarks need (a browser, a database
## server, Python's venv), which `make run` on a new machine need not wait for.
setup: setup-apt setup-run

setup-run: setup-apt-run
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@if [ ! -x end2end/node_modules/.bin/playwright ] || [ ! -x end2end/node_modules/.bin/wasm-opt ] \
	    || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
	  (cd end2end && npm ci --no-audit --no-fund)
	fi

# Debian packages. To build and serve: nasm for a faster H.264 encoder, eSpeak NG for the offline
# voice, libopus (with pkg-config, so the opus crate links Debian's library instead of building
# its own with cmake), and WenQuanYi Micro Hei for the letters DejaVu lacks (Chinese, Japanese,
# Korean) in pictures' text. For the tests as well: Chromium for the browser tests, PostgreSQL
# for the storage tests on the scale-out backend, Python's venv for the S3 test server.
RUN_DEBS := nasm espeak-ng libopus-dev pkg-config fonts-wqy-microhei
TEST_DEBS := chromium postgresql python3-venv
define have_run_debs
command -v nasm >/dev/null && command -v espeak-ng >/dev/null && command -v pkg-config >/dev/null && pkg-config --exists opus \
  && [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]
endef

setup-apt-run:
	@if ! { $(have_run_debs); }; then
	  echo "installing Debian packages: $(RUN_DEBS)"
	  apt-get update -qq
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(RUN_DEBS) >/dev/null
	fi

setup-apt:
	@if ! { $(have_run_debs); } || ! command -v chromium >/dev/null || [ -z "$(PG_BIN)" ] || ! python3 -c 'import ensurepip' 2>/dev/null; then
	  echo "installing Debian packages: $(RUN_DEBS) $(TEST_DEBS)"
	  apt-get update -qq
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(RUN_DEBS) $(TEST_DEBS) >/dev/null
	fi

# The site is built first: the drills and the browser tests start the real binary, which refuses
# to start without the site files its pages ask for.
# moto's venv installs from PyPI meanwhile (network and unpacking, little CPU: 39 s off the end),
# and the test binaries build right after the server, beside the site's WASM side (each leaves
# a core idle in its serial stretches).
test: setup
	mkdir -p target
	# In its own process group, so a failed build stops pip too (a second run's venv is then
	# never made while a first one's install still writes into it).
	setsid -w $(MAKE) --no-print-directory s3venv >target/s3venv.log 2>&1 & s3venv=$$!
	trap 'kill -- -$$s3venv 2>/dev/null || true' EXIT
	$(MAKE) --no-print-directory check
	scripts/build-site.sh --with-tests
	wait $$s3venv || true
	cat target/s3venv.log
	$(MAKE) --no-print-directory test-unit
	$(MAKE) --no-print-directory test-postgres
	$(MAKE) --no-print-directory test-scaleout
	$(MAKE) --no-print-directory test-e2e

## moto's standalone S3 server, from PyPI into target/s3venv on first use. `--no-compile`: Python
## byte-compiles the modules the server imports when it starts, not all of botocore's (56 → 39 s).
s3venv:
	@if [ ! -x target/s3venv/bin/moto_server ]; then
	  rm -rf target/s3venv
	  python3 -m venv target/s3venv && target/s3venv/bin/pip install -q --no-compile --disable-pip-version-check 'moto[server]'
	fi

## Unit tests of every layer, and the storage/pipeline suites on SQLite.
test-unit:
	cargo test --release --features ssr

## The storage/pipeline suites again on a throw-away PostgreSQL cluster (PostgreSQL refuses root,
## so the cluster belongs to the postgres user, in a temp dir it owns).
test-postgres:
	PG_BIN=$$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
	T=$$(mktemp -d /tmp/reelsmith-pg.XXXXXX); chown postgres "$$T"
	su postgres -c "$$PG_BIN/initdb -D $$T/db -A trust -U postgres >/dev/null && $$PG_BIN/pg_ctl -D $$T/db -o '-p $(PG_PORT) -k $$T -c fsync=off' -l $$T/log -w start >/dev/null"
	trap 'su postgres -c "$$PG_BIN/pg_ctl -D $$T/db -m immediate stop" >/dev/null; rm -rf "$$T"' EXIT
	REELSMITH_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$(PG_PORT)/postgres \
	  cargo test --release --features ssr --test it -- storage:: pipeline:: trust:: queries:: providers:: accounts:: pages::

## Several processes on one PostgreSQL cluster and one S3-compatible server (moto's standalone
## server, installed from PyPI into target/s3venv on first use): the blob store's contract and gc on
## S3, LISTEN/NOTIFY across processes, and the multi-process drill (2 web + 2 worker processes).
## Only a missing Python package registry skips it, loudly.
test-scaleout:
	@$(MAKE) --no-print-directory s3venv || {
	  echo "=== SKIPPED test-scaleout: cannot install moto[server] from PyPI into target/s3venv ===" >&2; exit 0; }
	PG_BIN=$$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
	T=$$(mktemp -d /tmp/reelsmith-scale.XXXXXX); chown postgres "$$T"; MOTO=""
	trap '[ -z "$$MOTO" ] || kill $$MOTO; su postgres -c "$$PG_BIN/pg_ctl -D $$T/db -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$$T"' EXIT
	su postgres -c "$$PG_BIN/initdb -D $$T/db -A trust -U postgres >/dev/null && $$PG_BIN/pg_ctl -D $$T/db -o '-p $(SCALE_PG_PORT) -k $$T -c fsync=off -c max_connections=200' -l $$T/log -w start >/dev/null" \
	  || { tail -3 "$$T/log" >&2; exit 1; }
	target/s3venv/bin/moto_server -p $(S3_PORT) >"$$T/moto.log" 2>&1 & MOTO=$$!
	target/s3venv/bin/python scripts/s3-bucket.py http://127.0.0.1:$(S3_PORT) reelsmith-test || { tail -20 "$$T/moto.log" >&2; exit 1; }
	AWS_ENDPOINT_URL=http://127.0.0.1:$(S3_PORT) AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
	REELSMITH_TEST_BLOB_URL=s3://reelsmith-test REELSMITH_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$(SCALE_PG_PORT)/postgres \
	  cargo test --release --features ssr --test it -- --include-ignored --nocapture scaleout:: drills::multi::

## What a person does, in Chromium, against the release binary (each run starts its own server):
## with accounts (each test signs up a fresh account) and as a single-user app. The two runs go at
## once, each with its own server, data directory and output: one run keeps about one core busy
## (its browser, its server and Playwright), so together they take ~60 s less on 2 cores. Each
## run's lines carry its mode; both must pass.
test-e2e:
	cd end2end
	# Each pipeline in a subshell: `wait` on a background pipeline's pid gives its last command's
	# status (sed's), not pipefail's; a subshell's is the whole pipeline's.
	( REELSMITH_E2E_AUTH=accounts npx playwright test 2>&1 | sed -u 's/^/[accounts] /' ) & accounts=$$!
	( REELSMITH_E2E_AUTH=none npx playwright test 2>&1 | sed -u 's/^/[none] /' ) & none=$$!
	failed=""
	wait $$accounts || failed="$$failed accounts"
	wait $$none || failed="$$failed none"
	if [ -n "$$failed" ]; then echo "test-e2e: the Playwright run(s) failed:$$failed" >&2; exit 1; fi

## Every figure: the engine's (`reelsmith bench`), the status page under load and in Chromium,
## the WASM bundle, and, when LangGraph installs from PyPI, the peer comparison.
bench: setup build
	./target/release/reelsmith bench
	./scripts/status-load.sh
	./scripts/page-tti.sh
	@wasm=$$(ls target/site/pkg/*.wasm); echo "wasm_bundle_kb: $$(( $$(stat -c %s $$wasm) / 1024 )) KB"; \
	  echo "wasm_bundle_gzip_kb: $$(( $$(gzip -9 -c $$wasm | wc -c) / 1024 )) KB"
	@scripts/bench-peer.sh || echo "bench: no LangGraph comparison (it could not be installed; see above)"

## Optional: Reelsmith's orchestration overhead beside LangGraph's (installed from PyPI into
## target/peer-venv) on the same 4-phase, 8-beat pipeline, in turns, three rounds.
bench-peer: setup build
	scripts/bench-peer.sh

## Both builds, warnings as errors (release profile: shares build scripts and macros with the tests).
check:
	cargo clippy --release --features ssr --all-targets -- -D warnings
	cargo clippy --release --lib --features hydrate --target wasm32-unknown-unknown -- -D warnings
