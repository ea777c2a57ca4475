#!/usr/bin/env bash
# Microseconds per part: `bash bench/perf.sh` from anywhere in the repository.
#
# Where a request's server CPU goes, on the hardware, for ztv and for the floor side by side.
# Builds ztv and the floor as release builds but with thin LTO and four codegen units, in
# target/thin: the shipped profile's fat LTO inlines the parts into their callers, where perf
# cannot tell them apart, and costs a few µs less per request. Then starts the emulator, the
# floor and `ztv serve` as bench/run.sh does (SQLite, in-process cache, JSON access log at
# info, audit and metrics on), and for each of GET /healthz and POST /v1/meeting-sdk/signature
# loads each server with wrk (-t2 -c64, as bench/run.sh) while `perf record --call-graph dwarf`
# samples it. Every sample goes to the first part of the table (in its order) found on its
# call stack, so the system calls a part makes count in that part; a part's share of the
# samples times the server's CPU per request in that run (from /proc/<pid>/stat) gives its
# microseconds. Sampling slows both servers, so the totals are above bench/run.sh's; the
# shares are what this measures.
# Under the audit event, the part of it that ran on SQLite's own thread.
#
# Environment: PERF_DURATION (seconds sampled per server and route, default 4), PERF_FREQUENCY
# (samples a second, 1500), PERF_KEEP=1 to keep the perf.data files (their directory is
# printed) for `perf report --children`.
set -euo pipefail

readonly DURATION="${PERF_DURATION:-4}"
readonly FREQUENCY="${PERF_FREQUENCY:-1500}"
readonly KEEP="${PERF_KEEP:-0}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly SCRIPT_NAME="perf"
# shellcheck source=bench/lib.sh
source "$REPO_ROOT/bench/lib.sh"

# Set by main; read by stop_measurement (lib.sh) on exit.
WORK_DIR=""
SERVER_PID=""
FLOOR_PID=""
EMULATOR_PID=""

# sample PID URL METHOD BODY KEY NAME → "<CPU µs per request>" after loading URL with wrk
# while perf samples PID into $WORK_DIR/NAME.data.
sample() {
  local pid="$1" url="$2" method="$3" body="$4" key="$5" name="$6" before after wrk_pid requests
  before="$(cpu_ticks "$pid")"
  ZTV_BENCH_KEY="$key" ZTV_BENCH_METHOD="$method" ZTV_BENCH_BODY="$body" \
    wrk -t2 -c64 -d"$((DURATION + 3))s" -s "$REPO_ROOT/bench/request.lua" "$url" \
    >"$WORK_DIR/$name.wrk" 2>&1 &
  wrk_pid=$!
  sleep 1.5
  perf record -q -F "$FREQUENCY" --call-graph dwarf,16384 -o "$WORK_DIR/$name.data" -p "$pid" \
    -- sleep "$DURATION" >/dev/null 2>&1 || die "perf record failed (is perf_event_paranoid <= 1?)"
  wait "$wrk_pid" || die "wrk failed: $(cat "$WORK_DIR/$name.wrk")"
  after="$(cpu_ticks "$pid")"
  requests="$(awk '/requests in/ { print $1 }' "$WORK_DIR/$name.wrk")"
  [[ -n $requests && $requests -gt 0 ]] || die "wrk served nothing: $(cat "$WORK_DIR/$name.wrk")"
  if grep -q "Non-2xx" "$WORK_DIR/$name.wrk"; then
    die "non-2xx answers under load: $(cat "$WORK_DIR/$name.wrk")"
  fi
  us_per_request "$((after - before))" "$requests"
}

# parts NAME → each part's share of NAME.data's samples, one "part<TAB>share" line each.
parts() {
  perf script -i "$WORK_DIR/$1.data" -F comm,ip,sym 2>/dev/null | python3 -c '
import collections, sys
# The first part whose pattern is on a sample'"'"'s call stack takes the sample.
# Metrics come before the audit event, which counts the tokens it records as issued.
AUDIT = "the audit event (built, queued, written by the writer task and the SQLite thread)"
PARTS = [
    ("metrics", ["ztv::telemetry::metrics::"]),
    (AUDIT, ["ztv::audit::", "sqlx_sqlite", "sqlite3", "append_audit", "middleware::audit"]),
    ("the access line", ["ztv::telemetry::logs::"]),
    ("a new request id", ["request_id::"]),
    ("the route label, client address and request id read", ["Seen::of"]),
    ("the API-key check and the per-caller rate limit",
     ["caller::Caller>::from_request_parts", "rate_limit::", "KeyRing"]),
    ("signing", ["ztv::signing::", "jsonwebtoken::"]),
    ("the JSON answer", ["IntoResponse>::into_response"]),
    ("the answer written (hyper, writev, loopback TCP)", ["poll_flush", "write_head"]),
    ("the request read and parsed (hyper, recv)",
     ["poll_read_head", "poll_read_body", "poll_read_from_io"]),
    ("the body read, routing, middleware and the handler",
     ["FromRequest<S>>::from_request", "Router<S>::call_with_state", "observe::", "Observe<S>",
      "middleware::Guard", "Tracked as", "Handler<", "Oneshot", "RouteFuture"]),
    ("idle workers, interrupts, the allocator and the runtime", [""]),
]
counts, total, sqlite, stack, comm = collections.Counter(), 0, 0, [], None
def take():
    global total, sqlite
    if comm is None:
        return
    text = "\n".join(stack)
    on_sqlite = comm.startswith("sqlx-sqlite")
    part = AUDIT if on_sqlite else next(
        name for name, patterns in PARTS if any(p in text for p in patterns))
    counts[part] += 1
    total += 1
    sqlite += on_sqlite
for line in sys.stdin:
    if not line.strip():
        take()
        comm, stack = None, []
    elif line[0] not in " \t":
        comm = line.split()[0]
    else:
        stack.append(line.strip())
take()
for name, _ in PARTS:
    print(f"{name}\t{counts[name] / max(total, 1):.5f}")
    if name == AUDIT:
        print(f"  of which on SQLite\x27s own thread\t{sqlite / max(total, 1):.5f}")
'
}

main() {
  trap stop_measurement EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  command -v curl >/dev/null || die "curl is required"
  command -v python3 >/dev/null || die "python3 is required"
  install_if_missing wrk wrk
  install_if_missing perf linux-perf

  # Thin LTO, in a target folder of its own: fat LTO inlines the parts into their callers.
  local thin="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/thin"
  log "cargo build --release with thin LTO into $thin (ztv and the floor)"
  (cd "$REPO_ROOT" && CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=4 \
    CARGO_TARGET_DIR="$thin" cargo build --release --bin ztv --example floor) ||
    die "release build failed"
  local target="$thin/release"
  clear_ztv_environment

  WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ztv-perf.XXXXXX")"
  local emulator_port port floor_port
  emulator_port="$(free_port)"
  port="$(free_port)"
  floor_port="$(free_port)"
  EMULATOR_LOG="$WORK_DIR/emulator.log"
  "$target/ztv" emulator --bind "127.0.0.1:$emulator_port" >"$EMULATOR_LOG" 2>&1 &
  EMULATOR_PID=$!
  wait_for_url "http://127.0.0.1:$emulator_port/_emulator/stats" "$EMULATOR_PID" "the emulator"
  "$target/examples/floor" "127.0.0.1:$floor_port" >"$WORK_DIR/floor.log" 2>&1 &
  FLOOR_PID=$!
  wait_for_url "http://127.0.0.1:$floor_port/healthz" "$FLOOR_PID" "the floor"
  write_bench_config "$WORK_DIR/ztv.toml" "$port" "http://127.0.0.1:$emulator_port" \
    "sqlite://$WORK_DIR/ztv.db"
  local key
  key="$(create_api_key "$target/ztv" "$WORK_DIR/ztv.toml" perf meeting-sdk:signature)"
  SERVER_LOG="$WORK_DIR/server.log"
  "$target/ztv" --config "$WORK_DIR/ztv.toml" serve >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  wait_for_url "http://127.0.0.1:$port/healthz" "$SERVER_PID" "ztv serve"

  printf '\nserver CPU per request by part, µs (perf at %s Hz, %s s per server and route)\n' \
    "$FREQUENCY" "$DURATION"
  printf 'machine: %s CPUs, %s; commit %s\n' "$(nproc)" \
    "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
    "$(git -C "$REPO_ROOT" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)"
  local route method path body floor_us ztv_us
  for route in healthz signature; do
    read -r method path <<<"$(route_request "$route")"
    body="$(route_body "$route")"
    log "$method $path: the floor"
    floor_us="$(sample "$FLOOR_PID" "http://127.0.0.1:$floor_port$path" "$method" "$body" \
      "$key" "floor-$route")"
    log "$method $path: ztv"
    ztv_us="$(sample "$SERVER_PID" "http://127.0.0.1:$port$path" "$method" "$body" "$key" \
      "ztv-$route")"
    printf '\n%s %s\n%-80s %8s %8s %8s\n' "$method" "$path" "part" "floor" "ztv" "ztv-floor"
    # Both list the parts in the same order.
    paste <(parts "floor-$route") <(parts "ztv-$route") |
      awk -F'\t' -v f="$floor_us" -v z="$ztv_us" '
        { printf "%-80s %8.2f %8.2f %8.2f\n", $1, $2 * f, $4 * z, $4 * z - $2 * f }
        END { printf "%-80s %8.2f %8.2f %8.2f\n", "total", f, z, z - f }'
  done
  if [[ $KEEP == 1 ]]; then
    printf '\nperf.data files kept in %s\n' "$WORK_DIR"
  fi
}

main "$@"
