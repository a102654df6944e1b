#!/usr/bin/env bash
# SIP edge figures next to Kamailio's, from the same load kit, in the same run (issue 4).
#
# Runs the shared kit's bench.sh (sipp on CPU 1) against `ledgerline serve` (pinned to CPU 0, a
# fresh data directory per step) and then against Kamailio with digest auth
# (kamailio-registrar-auth.cfg, pinned to CPU 0), stepping the rate up until a step is no longer
# clean, and prints each side's highest clean rate and the ratio.
#
# Both sides start every step empty: ours with a fresh data directory, Kamailio restarted (its
# location table lives in memory only, usrloc db_mode=0). So on both, the first NUSERS
# REGISTERs of a step are new bindings and the rest are refreshes. (Kept running across steps,
# Kamailio would see only refreshes after its first step while ours wrote every binding anew.)
#
#   scripts/sip-bench.sh                 everything: reg-auth and call-auth, ours and Kamailio's,
#                                        interleaved (each rate on ours, then on Kamailio)
#   scripts/sip-bench.sh ours|kam        one side only
#
# The shared VM's speed drifts by a factor of two within minutes, so `all` runs the two ladders
# side by side: each rate on ours and then on Kamailio (idle meanwhile, on its own port), until
# both have had a step that is not clean. Figures taken minutes apart are not compared.
#
# Clean (the kit's README): REGISTER 0 failures, < 0.1 % retransmissions, p99 < 50 ms;
# calls < 1 % failures.
#
# Steal: the kit reports the hypervisor's steal time over each step. A step that is not clean
# while more than STEAL_MAX % of the machine was stolen measured the neighbours, not the server:
# it is run again on a fresh server, up to RETRIES times, on either side alike; every attempt is
# printed, and the ladder goes on from the last one.
#
# Accounts: bench.sh's auth CSV names users `u000001…`, but a SIP username here is the
# extension number, so this script writes the kit's CSV itself (same format, same count) with
# extensions 1000001… (password `sip-<ext>`, which Kamailio's config derives the same way) and
# a callee 2000000; the directory names the users u000001… with those extensions.
#
# Flood limits: every sipp packet comes from 127.0.0.1, far over the per-source packet budget,
# so the server is started with `--sip-exempt 127.0.0.1` (the edge's `FloodConfig::exempt`).
#
# Digest uri: sipp puts `sip:<remote ip:port>` in the digest `uri` unless given `-auth_uri`;
# the edge requires the Request-URI there (RFC 2617 §3.2.2.5), Kamailio does not check it.
# bench.sh takes no extra sipp arguments, so a `sipp` wrapper first on PATH adds
# `-auth_uri CALLEE@TARGET` to the caller scenario (for both servers alike).
#
# Environment (defaults in brackets):
#   KIT [../shared/bench from the repository]   the sipp/Kamailio kit
#   NUSERS [10000]          accounts registering (every REGISTER past the first NUSERS is a
#                           refresh that changes nothing, which writes no event; set NUSERS >=
#                           rate*secs to make every REGISTER a new binding)
#   SECS [15]               seconds per step
#   REG_RATES ["4000 6000 8000 10000 12000 14000 16000 20000 25000"],
#   CALL_RATES ["500 750 1000 1250 1500 1750 2000 2500 3000"] (steps of a quarter to a sixth
#                           near where both sides stop: coarser steps made the ratio jump
#                           between 0.40 and 0.60 with one step more or less); set one
#                           empty (REG_RATES=) to skip that kind
#   HOLD [0]                ms between ACK and BYE
#   STEAL_MAX [10], RETRIES [2]  a step not clean under more steal than this is run again
#   PORT [5080]             our SIP port (UDP and TCP on 127.0.0.1); HTTP on PORT+1000
#   STORE_FLAGS [""]        e.g. "--relaxed-fsync" (report such figures separately)
#   LEDGERLINE [built here] the binary; without it, `cargo build --release` builds it
#   SERVER_CPU [0], GEN_CPU [1]; WORK [/tmp/ledgerline-sip-bench]: generated files, sipp
#   results (WORK/results/ours, WORK/results/kam), our server's log (WORK/serve.log, the last
#   step's) and the figures (WORK/figures.txt)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KIT="$(cd "${KIT:-$ROOT/../shared/bench}" && pwd)"
NUSERS="${NUSERS:-10000}"
SECS="${SECS:-15}"
REG_RATES="${REG_RATES-4000 6000 8000 10000 12000 14000 16000 20000 25000}"
CALL_RATES="${CALL_RATES-500 750 1000 1250 1500 1750 2000 2500 3000}"
HOLD="${HOLD:-0}"
STEAL_MAX="${STEAL_MAX:-10}"
RETRIES="${RETRIES:-2}"
[[ "$STEAL_MAX" =~ ^[0-9]+([.][0-9]+)?$ && "$RETRIES" =~ ^[0-9]+$ ]] ||
  { echo "STEAL_MAX must be a number and RETRIES a whole number" >&2; exit 2; }
PORT="${PORT:-5080}"
STORE_FLAGS="${STORE_FLAGS:-}"
SERVER_CPU="${SERVER_CPU:-0}"
WORK="${WORK:-/tmp/ledgerline-sip-bench}"
CALLEE=2000000
export GEN_CPU="${GEN_CPU:-1}" KAM_CPU="$SERVER_CPU" NUSERS CALLEE
export STATEDIR="$WORK/state" RESULTS="$WORK/results" WAIT_IDLE_MAX="${WAIT_IDLE_MAX:-30}"
mkdir -p "$WORK" "$STATEDIR"
SUMMARY="$WORK/figures.txt"

for tool in sipp kamailio taskset python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y sip-tester kamailio)" >&2; exit 1; }
done

# The sipp wrapper (see the header): the digest uri of the caller scenario is the Request-URI.
SIPP="$(command -v sipp)"
mkdir -p "$WORK/bin"
printf '%s\n' '#!/bin/sh' \
  'case "$*" in' \
  "  *uac-call-auth.xml*) exec '$SIPP' \"\$@\" -auth_uri \"$CALLEE@\${TARGET:-127.0.0.1:5070}\" ;;" \
  'esac' \
  "exec '$SIPP' \"\$@\"" > "$WORK/bin/sipp"
chmod +x "$WORK/bin/sipp"
export PATH="$WORK/bin:$PATH"

ext() { printf '1%06d' "$1"; }

# The directory: one tenant, NUSERS users u000001… on extensions 1000001…, and the callee.
write_directory() {
  local f="$WORK/directory-$NUSERS.toml"
  [ -s "$f" ] || python3 - "$NUSERS" "$CALLEE" > "$f" <<'PY'
import sys
n, callee = int(sys.argv[1]), sys.argv[2]
print('[[tenants]]\nid = "bench"\nname = "Bench"\nsip_domain = "bench.example"\n')
print('[[tenants.profiles]]\nid = "basic"\nname = "Basic"\nfeatures = []\n')
print('[[tenants.departments]]\nid = "d000"\nname = "Bench"\n')
def user(uid, ext):
    print(f'[[tenants.users]]\nid = "{uid}"\nname = "User {uid}"\nextension = "{ext}"\n'
          f'department = "d000"\nprofile = "basic"\nsip_password = "sip-{ext}"\n')
for i in range(1, n + 1):
    user(f"u{i:06d}", f"1{i:06d}")
user("bob", callee)
PY
  echo "$f"
}

# The kit's injection CSVs (bench.sh reuses a non-empty file in $STATEDIR).
write_csvs() {
  local f="$STATEDIR/users-auth-$NUSERS.csv"
  if [ ! -s "$f" ]; then
    { echo SEQUENTIAL
      seq 1 "$NUSERS" | awk '{e=sprintf("1%06d",$1); print e";[authentication username="e" password=sip-"e"];"}'
    } > "$f"
  fi
}

binary() {
  if [ -n "${LEDGERLINE:-}" ]; then echo "$LEDGERLINE"; return; fi
  (cd "$ROOT" && cargo build --release -q -p web --bin ledgerline >&2)
  echo "${CARGO_TARGET_DIR:-$ROOT/target}/release/ledgerline"
}

SERVER_PID=""
start_ours() {   # a fresh data directory; returns once the SIP edge listens
  local data="$WORK/data" log="$WORK/serve.log"
  stop_ours; rm -rf "$data"; mkdir -p "$data"
  # shellcheck disable=SC2086
  taskset -c "$SERVER_CPU" "$BIN" --data-dir "$data" --config "$DIRECTORY" $STORE_FLAGS serve \
    --sip "127.0.0.1:$PORT" --http "127.0.0.1:$((PORT + 1000))" --sip-exempt 127.0.0.1 \
    > "$log" 2>&1 &
  SERVER_PID=$!
  local i
  for i in $(seq 1 600); do
    grep -q '^  SIP ' "$log" 2>/dev/null && { sleep 1; return 0; }
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.5
  done
  echo "ledgerline did not start" >&2; cat "$log" >&2; return 1
}

stop_ours() {
  [ -n "$SERVER_PID" ] || return 0
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# Kamailio with digest auth, started afresh (an empty location table); stops one still running.
start_kam() {
  stop_kam
  KAM_CFG=kamailio-registrar-auth.cfg "$KIT/bench.sh" kam-start >&2
}

stop_kam() {
  [ -s "$STATEDIR/kamailio.pid" ] || return 0
  "$KIT/bench.sh" kam-stop >&2
}

# Runs one bench.sh step; prints its summary lines and records "side kind rate clean line",
# the line ending in the attempt's number and the steal the kit saw. Returns 0 when clean, 2
# when not clean under steal above STEAL_MAX (see the header), else 1.
step() {   # side kind rate attempt
  local side=$1 kind=$2 rate=$3 attempt=$4 out
  if [ "$kind" = reg-auth ]; then
    out=$("$KIT/bench.sh" reg-auth "$rate" "$SECS")
  else
    out=$("$KIT/bench.sh" call-auth "$rate" "$SECS" "$HOLD")
  fi
  echo "$out" | sed "s/^/  [$side] /" >&2
  local line; line=$(echo "$out" | grep -E "^$kind rate=" | head -1)
  local clean; clean=$(python3 - "$kind" "$line" <<'PY'
import re, sys
kind, line = sys.argv[1], sys.argv[2]
kv = dict(re.findall(r'(\w[\w%]*)=([\d.]+)', line))
created, ok, failed = int(kv.get('created', 0)), int(kv.get('ok', 0)), int(kv.get('failed', 0))
retrans = int(kv.get('retrans', 0))
m = re.search(r'rtd1\(ms\):p50=[\d.]+,p95=[\d.]+,p99=([\d.]+)', line)
p99 = float(m.group(1)) if m else 1e9
if created == 0:
    print('no'); sys.exit()
if kind == 'reg-auth':
    good = failed == 0 and ok == created and retrans * 1000 < created and p99 < 50
else:
    good = failed * 100 < created and ok + failed == created
print('yes' if good else 'no')
PY
)
  local steal; steal=$(echo "$out" | grep -oE 'steal%=[0-9.]+' | head -1 | cut -d= -f2 || true)
  echo "$side $kind $rate $clean $line attempt=$attempt steal%=${steal:-?}" >> "$WORK/steps.txt"
  [ "$clean" = yes ] && return 0
  python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" \
    "${steal:-0}" "$STEAL_MAX" && return 2
  return 1
}

# One step of `kind` at `rate` on `side`, on a server started afresh for it (ours: a new data
# directory; kam: Kamailio restarted); fails when the step is not clean.
step_on() {   # side kind rate
  local side=$1 kind=$2 rate=$3 attempt result=1
  # Each side's sipp files apart (bench.sh names them by kind and rate only), so a step of
  # Kamailio's does not overwrite the error files of ours at the same rate.
  export RESULTS="$WORK/results/$side"
  for attempt in $(seq 0 "$RETRIES"); do
    [ "$attempt" = 0 ] || echo "  [$side] again: the last step was not clean under steal above $STEAL_MAX %" >&2
    if [ "$side" = ours ]; then
      start_ours
      export TARGET="127.0.0.1:$PORT" SERVER_PIDS="$SERVER_PID"
    else
      start_kam
      export TARGET=127.0.0.1:5070
      unset SERVER_PIDS
    fi
    result=0
    step "$side" "$kind" "$rate" "$attempt" || result=$?
    [ "$side" = ours ] && stop_ours
    [ "$result" = 2 ] || break
  done
  [ "$result" = 0 ]
}

# The given sides (ours, kam or both), rate by rate: each rate on each side still climbing;
# a side stops climbing after its first step that is not clean.
run_sides() {   # sides...
  local sides=" $* " kind rates rate side on
  if [[ "$sides" == *" ours "* ]]; then BIN=$(binary); DIRECTORY=$(write_directory); fi
  if [[ "$sides" == *" kam "* ]]; then
    trap 'stop_kam; stop_ours' EXIT
  fi
  for kind in reg-auth call-auth; do
    if [ "$kind" = reg-auth ]; then rates=$REG_RATES; else rates=$CALL_RATES; fi
    on="$*"
    for rate in $rates; do
      local still=""
      for side in $on; do
        step_on "$side" "$kind" "$rate" && still="$still $side"
      done
      on=$still
      [ -n "$on" ] || break
    done
  done
  unset TARGET SERVER_PIDS
  if [[ "$sides" == *" kam "* ]]; then
    stop_kam
    trap stop_ours EXIT
  fi
}

report() {
  python3 - "$WORK/steps.txt" "$STORE_FLAGS" <<'PY' | tee "$SUMMARY"
import re, sys
steps = [l.split(' ', 4) for l in open(sys.argv[1]) if l.strip()]
flags = sys.argv[2] or 'durable (fsync every commit)'
best = {}
for side, kind, rate, clean, line in steps:
    if clean == 'yes' and int(rate) >= best.get((side, kind), (0, ''))[0]:
        best[(side, kind)] = (int(rate), line.strip())
print(f'highest clean rate per side (store: {flags})')
for kind in ('reg-auth', 'call-auth'):
    ours, kam = best.get(('ours', kind), (0, '-')), best.get(('kam', kind), (0, '-'))
    ratio = f'{ours[0] / kam[0]:.2f}' if kam[0] else 'n/a'
    print(f'{kind}: ledgerline {ours[0]}/s, kamailio {kam[0]}/s, ratio {ratio}')
    print(f'  ledgerline: {ours[1]}')
    print(f'  kamailio:   {kam[1]}')
# The kit's second figure: CPU at the same rate, for the rates both sides ran (clean or not).
cpu = {}
for side, kind, rate, clean, line in steps:
    m = re.search(r'server_cpu%=([\d.]+)', line)
    if m:
        cpu[(side, kind, int(rate))] = float(m.group(1))
for kind in ('reg-auth', 'call-auth'):
    rates = sorted({r for (s, k, r) in cpu if k == kind and s == 'ours'}
                   & {r for (s, k, r) in cpu if k == kind and s == 'kam'})
    if rates:
        print(f'{kind}: server CPU % at the same rate, ledgerline / kamailio (ratio; per '
              'operation only below saturation: a saturated step runs longer and caps near 100)')
        for r in rates:
            o, k = cpu[('ours', kind, r)], cpu[('kam', kind, r)]
            print(f'  {r}/s: {o:.1f} / {k:.1f} ({o / k:.2f})' if k else f'  {r}/s: {o:.1f} / {k:.1f}')
PY
}

trap stop_ours EXIT
write_csvs
: > "$WORK/steps.txt"
case "${1:-all}" in
  ours) run_sides ours ;;
  kam) run_sides kam ;;
  all) run_sides ours kam ;;
  *) sed -n '2,30p' "$0"; exit 2 ;;
esac
report
