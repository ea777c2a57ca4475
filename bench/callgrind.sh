#!/usr/bin/env bash
# Instructions per request: `bash bench/callgrind.sh` from anywhere in the repository.
#
# Throughput on a shared 2-core machine moves by ±15 % from one run to the next; instruction
# counts do not. This builds the release binary, runs `ztv serve` (SQLite, in-process cache,
# JSON request logs at info, as bench/run.sh does) under `valgrind --tool=callgrind` against
# the built-in Zoom emulator, and for each of GET /healthz, POST /v1/meeting-sdk/signature and
# GET /v1/users/{userId}/zak (warm) sends CALLGRIND_WARMUP warm-up requests (default 400:
# with fewer, the audit writer was still preparing its INSERT shapes on the pool's
# connections, a one-off cost that counted as ~3 500 instructions a signature), zeroes the
# counters, sends CALLGRIND_REQUESTS requests (default 2000, over 4 keep-alive connections,
# one at a time), waits for the audit writer's next flush, and dumps the counters: every
# thread of the server, the audit writer's SQLite inserts included. The floor (bench/floor, as
# bench/run.sh starts it) is measured the same way for its hello and signer first. It prints
# the instructions per request of each route, the floor's and the difference, and each ztv
# route's ratio to /healthz. Figures depend on the binary and the CPU features valgrind shows
# it (SHA-256 runs its AVX code under valgrind, SHA-NI where the CPU has it), so compare builds
# on one machine.
#
# Environment: CALLGRIND_REQUESTS (default 2000), CALLGRIND_WARMUP (400), ZTV_BINARY
# (default: the release build of this checkout, built first) to measure another build (the
# floor is always this checkout's), CALLGRIND_KEEP=1 to keep the callgrind.out files (their
# directory is printed) for `callgrind_annotate --inclusive=yes`.
set -euo pipefail

readonly REQUESTS="${CALLGRIND_REQUESTS:-2000}"
readonly WARMUP="${CALLGRIND_WARMUP:-400}"
readonly KEEP="${CALLGRIND_KEEP:-0}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly SCRIPT_NAME="callgrind"
# shellcheck source=bench/lib.sh
source "$REPO_ROOT/bench/lib.sh"

# Set by main; read by stop_measurement (lib.sh) on exit.
WORK_DIR=""
SERVER_PID=""
FLOOR_PID=""
EMULATOR_PID=""

ensure_tools() {
  command -v curl >/dev/null || die "curl is required"
  command -v python3 >/dev/null || die "python3 is required"
  install_if_missing callgrind_control valgrind
}

# Sends N requests to one route over 4 keep-alive connections, one at a time; fails on any
# answer but 200.
load() {
  python3 - "$@" <<'PY'
import http.client, sys
port, key, method, path, body, n = sys.argv[1:7]
connections = [http.client.HTTPConnection("127.0.0.1", int(port)) for _ in range(4)]
headers = {"Authorization": "Bearer " + key}
if body:
    headers["Content-Type"] = "application/json"
for i in range(int(n)):
    c = connections[i % 4]
    c.request(method, path, body=body or None, headers=headers)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{method} {path} answered {r.status}")
PY
}

# measure PID PORT KEY ROUTE LABEL → the instructions per request of ROUTE on the server
# under callgrind at PID: warm-up, counters zeroed, REQUESTS requests, the audit writer's next
# flush, a dump named LABEL-ROUTE.
measure() {
  local pid="$1" port="$2" key="$3" route="$4" label="$5" method path body dump=""
  read -r method path <<<"$(route_request "$route")"
  body="$(route_body "$route")"
  load "$port" "$key" "$method" "$path" "$body" "$WARMUP" || die "$label: $method $path failed"
  sleep 0.5
  callgrind_control --zero "$pid" >/dev/null 2>&1 || die "callgrind_control --zero failed"
  load "$port" "$key" "$method" "$path" "$body" "$REQUESTS" || die "$label: $method $path failed"
  # The audit writer flushes every 200 ms: its inserts are counted too.
  sleep 0.6
  callgrind_control --dump="$label-$route" "$pid" >/dev/null 2>&1 ||
    die "callgrind_control --dump failed"
  for _ in $(seq 1 50); do
    dump="$(grep -l "^desc: Trigger: .*dump $label-$route\$" "$WORK_DIR"/*callgrind.out.* 2>/dev/null | head -n 1)" || true
    [[ -n $dump ]] && break
    sleep 0.1
  done
  [[ -n $dump ]] || die "no callgrind dump for $label $route"
  awk -v n="$REQUESTS" '/^summary:/ { printf "%d", $2 / n }' "$dump"
}

main() {
  trap stop_measurement EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  ensure_tools
  # Read before the ZTV_* variables are cleared for the server.
  local ztv="${ZTV_BINARY:-}"
  log "cargo build --release (the floor$([[ -z $ztv ]] && echo " and ztv"))"
  (cd "$REPO_ROOT" && cargo build --release --example floor) || die "release build of the floor failed"
  local floor="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/examples/floor"
  if [[ -z $ztv ]]; then
    (cd "$REPO_ROOT" && cargo build --release) || die "release build failed"
    ztv="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/ztv"
  fi
  [[ -x $ztv ]] || die "no binary at $ztv"
  clear_ztv_environment

  WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ztv-callgrind.XXXXXX")"
  local emulator_port port floor_port
  emulator_port="$(free_port)"
  port="$(free_port)"
  floor_port="$(free_port)"
  "$ztv" emulator --bind "127.0.0.1:$emulator_port" --user "emuUser0001:$ZAK_USER" \
    >"$WORK_DIR/emulator.log" 2>&1 &
  EMULATOR_PID=$!
  wait_for_url "http://127.0.0.1:$emulator_port/_emulator/stats" "$EMULATOR_PID" "the emulator"
  write_bench_config "$WORK_DIR/ztv.toml" "$port" "http://127.0.0.1:$emulator_port" \
    "sqlite://$WORK_DIR/ztv.db"
  local key
  key="$(create_api_key "$ztv" "$WORK_DIR/ztv.toml" callgrind meeting-sdk:signature zak:read)"

  log "starting the floor under callgrind on port $floor_port"
  valgrind --tool=callgrind --callgrind-out-file="$WORK_DIR/floor.callgrind.out.%p" \
    "$floor" "127.0.0.1:$floor_port" >"$WORK_DIR/floor.log" 2>"$WORK_DIR/floor.valgrind.log" &
  FLOOR_PID=$!
  wait_for_url "http://127.0.0.1:$floor_port/healthz" "$FLOOR_PID" "the floor" 60
  local -A floor_of=()
  floor_of[healthz]="$(measure "$FLOOR_PID" "$floor_port" "$key" healthz floor)"
  floor_of[signature]="$(measure "$FLOOR_PID" "$floor_port" "$key" signature floor)"
  stop_process "$FLOOR_PID"
  FLOOR_PID=""

  log "starting ztv serve under callgrind on port $port"
  valgrind --tool=callgrind --callgrind-out-file="$WORK_DIR/callgrind.out.%p" \
    "$ztv" --config "$WORK_DIR/ztv.toml" serve >"$WORK_DIR/server.log" 2>"$WORK_DIR/valgrind.log" &
  SERVER_PID=$!
  # valgrind starts slowly.
  wait_for_url "http://127.0.0.1:$port/healthz" "$SERVER_PID" "ztv serve" 60

  local route instructions healthz="" floor_instructions difference
  printf '\nztv and the floor under callgrind: %s requests per route, commit %s\n\n' "$REQUESTS" \
    "$(git -C "$REPO_ROOT" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)"
  printf '%-36s %12s %12s %12s %12s\n' "route (instructions/req)" "floor" "ztv" "ztv - floor" \
    "vs healthz"
  for route in healthz signature zak; do
    instructions="$(measure "$SERVER_PID" "$port" "$key" "$route" ztv)"
    healthz="${healthz:-$instructions}"
    floor_instructions="${floor_of[$route]:--}"
    difference="-"
    if [[ $floor_instructions != - ]]; then
      difference=$((instructions - floor_instructions))
    fi
    printf '%-36s %12s %12s %12s %12s\n' "$(route_request "$route")" "$floor_instructions" \
      "$instructions" "$difference" \
      "$(awk -v a="$instructions" -v b="$healthz" 'BEGIN { printf "%.2f", a / b }')"
  done
  if [[ $KEEP == 1 ]]; then
    printf '\ncallgrind files kept in %s (the floor'"'"'s: floor.callgrind.out.*)\n' "$WORK_DIR"
  fi
}

main "$@"
