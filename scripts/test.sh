#!/usr/bin/env bash
# Runs every Ledgerline test. Works on a fresh machine: installs what the tests need when it is
# missing (idempotent), starts PostgreSQL when it is down, then checks formatting and lints and
# runs the whole test suite, including the KurrentDB backend's build and unit tests (its
# integration tests also run when KURRENTDB_URL is set).
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are cached outside the clone so CI stays warm between runs; a fresh machine still works.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ledgerline/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export LEDGERLINE_TEST_PG="${LEDGERLINE_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"

log() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

log "system packages"
command -v cc >/dev/null || apt_install build-essential
# The SIP edge's integration tests drive it with sipp and baresip.
command -v sipp >/dev/null || apt_install sip-tester
command -v baresip >/dev/null || apt_install baresip
# The call panel's browser tests (web/tests/panel_browser.rs): Debian's Chromium driven by
# playwright-core from npm (never a downloaded browser).
[ -x /usr/bin/chromium ] || apt_install chromium
command -v npm >/dev/null || apt_install nodejs npm
[ -d web/tests/browser/node_modules/playwright-core ] ||
  (cd web/tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
if ! command -v pg_ctlcluster >/dev/null; then
  apt_install postgresql postgresql-client
  # A fresh Debian cluster asks for passwords over TCP; the tests connect as postgres on loopback.
  for hba in /etc/postgresql/*/main/pg_hba.conf; do
    grep -q 'ledgerline-tests' "$hba" || as_root sed -i '1i host all all 127.0.0.1/32 trust # ledgerline-tests' "$hba"
  done
fi

log "PostgreSQL"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  for v in $(ls /etc/postgresql); do
    as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432

log "format"
cargo fmt --all -- --check

log "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p events -p tests --features events/kurrentdb,tests/kurrentdb --all-targets --locked -- -D warnings

log "tests"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
cargo test --workspace --locked 2>&1 | tee -a "$results"
cargo test -p events -p tests --features events/kurrentdb,tests/kurrentdb --locked -- kurrent 2>&1 | tee -a "$results"

# One closing line for the whole run: the sum of every test binary's result line.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$results"
