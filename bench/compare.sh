#!/usr/bin/env bash
# Builds of ztv side by side on the hardware: `bash bench/compare.sh BINARY BINARY…`, e.g.
# `bash bench/compare.sh /tmp/ztv-before target/release/ztv`.
#
# bench/callgrind.sh compares builds in instructions, which miss what costs time only on the
# hardware: atomics the cores contend for, the kernel, the scheduler. This starts the built-in
# Zoom emulator (from the first binary), the floor (bench/floor, built first) and one
# `ztv serve` per binary, each configured as bench/run.sh does (JSON access log at info, audit
# and metrics on, the in-process cache) with a SQLite file of its own, and loads one route on
# each with wrk, interleaved: the floor (for healthz and signature, the routes it has), then
# every binary, in COMPARE_ROUNDS rounds, so that a slow spell of the shared machine falls on
# every build rather than on one. Each run prints its req/s, the CPU time each request cost
# the server (from /proc, every thread, SQLite's included) and wrk (bash's `time`), and its
# p99 latency; the summary gives each build's median over the rounds of req/s and of its ratio
# to the floor's in the same round, of its CPU per request, and of its p99 and that p99's
# ratio to the floor's. Differences smaller than the rounds' spread are noise.
#
# With COMPARE_FLOOR_BUSY_US=N (signature only) a second floor whose signer spins N µs per
# request joins the rounds as `floor+Nus`: a floor as costly as ztv, to show which costs (wrk's,
# the p99) follow a request's CPU rather than anything of ztv's.
#
# Environment: COMPARE_ROUTE (signature; or healthz, zak), COMPARE_ROUNDS (6),
# COMPARE_DURATION (5s per run), COMPARE_CONNECTIONS (64), COMPARE_THREADS (2),
# COMPARE_FLOOR_BUSY_US (none).
set -euo pipefail

readonly ROUTE="${COMPARE_ROUTE:-signature}"
readonly ROUNDS="${COMPARE_ROUNDS:-6}"
readonly DURATION="${COMPARE_DURATION:-5s}"
readonly CONNECTIONS="${COMPARE_CONNECTIONS:-64}"
readonly THREADS="${COMPARE_THREADS:-2}"
readonly BUSY_US="${COMPARE_FLOOR_BUSY_US:-0}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly SCRIPT_NAME="compare"
# shellcheck source=bench/lib.sh
source "$REPO_ROOT/bench/lib.sh"

# Set by main; read by cleanup and load.
WORK_DIR=""
PIDS=()
METHOD=""
ROUTE_PATH=""
BODY=""

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    stop_process "$pid"
  done
  if [[ -n $WORK_DIR ]]; then
    rm -rf "$WORK_DIR"
  fi
}

# load NAME PID URL KEY ROUND: one wrk run against URL; appends "NAME ROUND req/s
# server-µs/req wrk-µs/req p99-ms" to $WORK_DIR/results and prints it.
load() {
  local name="$1" pid="$2" url="$3" key="$4" round="$5" before after output requests rate cpu
  local wrk_cpu wrk_us p99
  before="$(cpu_ticks "$pid")"
  wrk_cpu="$(ZTV_BENCH_KEY="$key" ZTV_BENCH_METHOD="$METHOD" ZTV_BENCH_BODY="$BODY" \
    timed_wrk "$WORK_DIR/last-run.txt" -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
    -s "$REPO_ROOT/bench/request.lua" "$url$ROUTE_PATH")" ||
    die "wrk failed against $name: $(cat "$WORK_DIR/last-run.txt")"
  after="$(cpu_ticks "$pid")"
  output="$(cat "$WORK_DIR/last-run.txt")"
  if grep -q "Non-2xx" <<<"$output"; then
    die "non-2xx answers under load from $name: $output"
  fi
  requests="$(awk '/requests in/ { print $1 }' <<<"$output")"
  rate="$(awk '/Requests\/sec/ { print $2 }' <<<"$output")"
  [[ -n $requests && $requests -gt 0 ]] || die "wrk got no answers from $name: $output"
  cpu="$(us_per_request "$((after - before))" "$requests")"
  wrk_us="$(awk -v s="$wrk_cpu" -v n="$requests" 'BEGIN { printf "%.2f", s * 1e6 / n }')"
  p99="$(percentile_ms "$WORK_DIR/last-run.txt" 99)"
  printf '%s %s %s %s %s %s\n' "$name" "$round" "$rate" "$cpu" "$wrk_us" "$p99" |
    tee -a "$WORK_DIR/results"
}

# summary: per build, the medians over the rounds (lower middle for an even count).
summary() {
  python3 - "$WORK_DIR/results" <<'PYTHON'
import collections, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    name, round_, *figures = line.split()
    runs[name][round_] = tuple(map(float, figures))
def median(values):
    values = sorted(values)
    return values[(len(values) - 1) // 2]
def middle(rounds, column):
    return median(run[column] for run in rounds.values())
floor = runs.pop("floor", None)
print(f"\n{'build':<40} {'req/s':>10} {'/ floor':>8} {'server µs/req':>14} {'wrk µs/req':>11} "
      f"{'p99 ms':>7} {'/ floor':>8}   (medians of the rounds)")
if floor:
    print(f"{'floor':<40} {middle(floor, 0):>10.0f} {'':>8} {middle(floor, 1):>14.2f} "
          f"{middle(floor, 2):>11.2f} {middle(floor, 3):>7.2f}")
for name, rounds in runs.items():
    def against_floor(column):
        if not floor:
            return "-"
        return f"{median(run[column] / floor[k][column] for k, run in rounds.items()):.3f}"
    print(f"{name:<40} {middle(rounds, 0):>10.0f} {against_floor(0):>8} "
          f"{middle(rounds, 1):>14.2f} {middle(rounds, 2):>11.2f} {middle(rounds, 3):>7.2f} "
          f"{against_floor(3):>8}")
PYTHON
}

main() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  [[ $# -ge 1 ]] || die "usage: bash bench/compare.sh BINARY [BINARY…] (builds of ztv)"
  local binary
  for binary in "$@"; do
    [[ -x $binary ]] || die "$binary is not an executable"
  done
  case $ROUTE in
    healthz | signature | zak) ;;
    *) die "COMPARE_ROUTE is healthz, signature or zak, not $ROUTE" ;;
  esac
  [[ $BUSY_US =~ ^[0-9]+$ ]] || die "COMPARE_FLOOR_BUSY_US is microseconds, not $BUSY_US"
  if [[ $BUSY_US != 0 && $ROUTE != signature ]]; then
    die "COMPARE_FLOOR_BUSY_US slows the floor's signer; it needs COMPARE_ROUTE=signature"
  fi
  command -v curl >/dev/null || die "curl is required"
  command -v python3 >/dev/null || die "python3 is required"
  install_if_missing wrk wrk
  read -r METHOD ROUTE_PATH <<<"$(route_request "$ROUTE")"
  BODY="$(route_body "$ROUTE")"

  log "cargo build --release --example floor"
  (cd "$REPO_ROOT" && cargo build --release --example floor) || die "the floor's build failed"
  clear_ztv_environment
  WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ztv-compare.XXXXXX")"
  : >"$WORK_DIR/results"

  local emulator_url floor_url="" floor_pid="" port
  port="$(free_port)"
  emulator_url="http://127.0.0.1:$port"
  EMULATOR_LOG="$WORK_DIR/emulator.log"
  "$1" emulator --bind "127.0.0.1:$port" >"$EMULATOR_LOG" 2>&1 &
  PIDS+=($!)
  wait_for_url "$emulator_url/_emulator/stats" "$!" "the emulator"
  if [[ $ROUTE != zak ]]; then
    port="$(free_port)"
    floor_url="http://127.0.0.1:$port"
    "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/examples/floor" "127.0.0.1:$port" \
      >"$WORK_DIR/floor.log" 2>&1 &
    floor_pid=$!
    PIDS+=("$floor_pid")
    wait_for_url "$floor_url/healthz" "$floor_pid" "the floor"
  fi

  local -a names=() pids=() urls=() keys=()
  local i=0 config
  for binary in "$@"; do
    port="$(free_port)"
    config="$WORK_DIR/ztv-$i.toml"
    write_bench_config "$config" "$port" "$emulator_url" "sqlite://$WORK_DIR/ztv-$i.db"
    keys+=("$(create_api_key "$binary" "$config" compare meeting-sdk:signature zak:read)")
    SERVER_LOG="$WORK_DIR/server-$i.log"
    "$binary" --config "$config" serve >"$SERVER_LOG" 2>&1 &
    PIDS+=($!)
    pids+=($!)
    wait_for_url "http://127.0.0.1:$port/healthz" "$!" "ztv serve ($binary)"
    urls+=("http://127.0.0.1:$port")
    names+=("$((i + 1)):$binary")
    i=$((i + 1))
  done
  SERVER_LOG=""
  if [[ $BUSY_US != 0 ]]; then
    port="$(free_port)"
    FLOOR_BUSY_US="$BUSY_US" "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/examples/floor" \
      "127.0.0.1:$port" >"$WORK_DIR/floor-busy.log" 2>&1 &
    PIDS+=($!)
    pids+=($!)
    wait_for_url "http://127.0.0.1:$port/healthz" "$!" "the busy floor"
    urls+=("http://127.0.0.1:$port")
    keys+=("${keys[0]}")
    names+=("floor+${BUSY_US}us")
  fi

  # A warm-up per server (the busy floor's too): connections, the allocator and, for the ZAK,
  # ztv's caches.
  log "warm-up, 2 s per server"
  for i in "${!pids[@]}"; do
    ZTV_BENCH_KEY="${keys[$i]}" ZTV_BENCH_METHOD="$METHOD" ZTV_BENCH_BODY="$BODY" \
      wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$REPO_ROOT/bench/request.lua" \
      "${urls[$i]}$ROUTE_PATH" >/dev/null
  done

  printf '\n%s %s, %s rounds of %s, wrk -t%s -c%s; machine: %s CPUs, %s\n' "$METHOD" "$ROUTE_PATH" \
    "$ROUNDS" "$DURATION" "$THREADS" "$CONNECTIONS" "$(nproc)" \
    "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  printf '%s\n' "(build round req/s server-CPU-µs/req wrk-CPU-µs/req p99-ms)"
  local round
  for ((round = 1; round <= ROUNDS; round++)); do
    if [[ -n $floor_pid ]]; then
      load floor "$floor_pid" "$floor_url" "${keys[0]}" "$round"
    fi
    for i in "${!pids[@]}"; do
      load "${names[$i]}" "${pids[$i]}" "${urls[$i]}" "${keys[$i]}" "$round"
    done
  done
  summary
}

main "$@"
