#!/usr/bin/env bash
# Load benchmark of ztv: `bash bench/run.sh` from anywhere in the repository.
#
# Builds the release binary and the floor (bench/floor: a bare axum server answering the same
# hello and Meeting SDK signature requests the plain way, no auth, logs or limits), starts the
# built-in Zoom emulator (`ztv emulator`), the floor and the service on free ports, the service
# at its shipped defaults against a throw-away SQLite database with the in-process cache and
# rate limits (JSON access log at info, as in the Dockerfile; audit and metrics on) and the
# emulator, then loads, interleaved in the same rounds, the floor's two routes and three of
# ztv's with wrk:
#   0) the floor's GET /healthz and POST /v1/meeting-sdk/signature – what the stack can do
#   a) GET  /healthz                      – routing, middleware, logging, no work
#   b) POST /v1/meeting-sdk/signature     – API-key check, body validation, HS256 signing
#   c) GET  /v1/users/{userId}/zak        – API-key check, a warm ZAK: the warm-up fills the
#                                           S2S token cache and the ZAK reuse cache
#                                           (zoom.user_token_cache_seconds), so the measured
#                                           run should barely reach the emulator
# Then it stops that server and runs b) and c) again against a second server on PostgreSQL
# (a schema of its own, dropped at the end) and Redis (a key prefix of its own, deleted at the
# end): the same accounts and the same emulator, but the API key lives in PostgreSQL and every
# authenticated request's rate limit and the shared S2S token go through Redis. When psql is
# missing or PostgreSQL or Redis does not answer, that part is skipped with a "skipped: …" line.
#
# The routes are measured in BENCH_ROUNDS interleaved rounds (floor hello, healthz, floor
# signer, signature, zak, then again), so that a slow spell of a shared machine falls on every
# route rather than on one: each ztv/floor ratio (req/s, and p99) is the median of the
# rounds' ratios (each from runs seconds apart), and each route's row is its median round. Next to the rates it prints the CPU time
# each request cost the server and the load generator (from /proc and bash's `time`): with
# wrk on the same CPUs the two share the machine, so the req/s ratio follows
# (server + wrk CPU of healthz) / (server + wrk CPU of signature).
#
# It prints requests/s, p50/p99 latency and each server's peak RSS side by side, next to the
# targets, then the upstream calls the emulator counted (its GET /_emulator/stats, before and
# after each backend's run), and for the ZAK route the requests served against the upstream
# ZAK calls. A missed target is reported, not asserted: the script fails only when the run
# itself is broken (build, start-up, a route that does not answer 200, non-2xx answers under
# load, Redis not in use by the second server).
#
# With traces (BENCH_TRACES=1, the default), a second SQLite server beside the first exports
# OpenTelemetry traces (telemetry.otlp_endpoint) to a local OTLP/HTTP sink that accepts and
# discards them, and its healthz, signature and warm ZAK routes join the same rounds: the
# traces on/off ratio of each is the median of the rounds' ratios.
#
# Environment: BENCH_DURATION (default 5s per route and round), BENCH_ROUNDS (3),
# BENCH_CONNECTIONS (64), BENCH_THREADS (2), BENCH_TRACES (1; 0 skips the traces-on server),
# BENCH_VERBOSE=1 to also print wrk's raw output, BENCH_DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/test) and BENCH_REDIS_URL (default redis://127.0.0.1:6379)
# for the second server.
set -euo pipefail

readonly DURATION="${BENCH_DURATION:-5s}"
readonly ROUNDS="${BENCH_ROUNDS:-3}"
readonly CONNECTIONS="${BENCH_CONNECTIONS:-64}"
readonly THREADS="${BENCH_THREADS:-2}"
readonly VERBOSE="${BENCH_VERBOSE:-0}"
readonly TRACES="${BENCH_TRACES:-1}"
readonly PG_URL="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
readonly REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
# Short warm-up so that connection set-up, the allocator and the CPU frequency settle
# before anything is measured.
readonly WARMUP="2s"

# Targets (see the result table), against the floor in the same rounds: ztv serves at least
# 75 % of what a bare axum server doing the same work serves, with a p99 at most 1.5 times
# the floor's, in under 32 MiB.
readonly TARGET_FLOOR_RATIO="0.75"
readonly TARGET_P99_FACTOR="1.5"
readonly TARGET_P99_MS="5"
readonly TARGET_RSS_MIB="32"

# The two backends: a directory of results under $WORK_DIR each, and a label for the report.
readonly SQLITE="sqlite"
readonly PGREDIS="pgredis"
declare -rA BACKEND_LABEL=([sqlite]="sqlite+in-process" [pgredis]="postgres+redis")

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly SCRIPT_NAME="bench"
# shellcheck source=bench/lib.sh
source "$REPO_ROOT/bench/lib.sh"
readonly LUA_SCRIPT="$REPO_ROOT/bench/request.lua"
readonly ZTV="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/ztv"
readonly FLOOR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/examples/floor"

# Set by the steps below; read by cleanup.
WORK_DIR=""
SERVER_PID=""
SERVER_LOG=""
EMULATOR_PID=""
EMULATOR_LOG=""
EMULATOR_URL=""
FLOOR_PID=""
FLOOR_URL=""
# The server with traces on, and the OTLP/HTTP sink it exports to.
TRACED_PID=""
SINK_PID=""
SINK_URL=""
# The process whose CPU a wrk run charges: the server, or the floor.
MEASURED_PID=""
PG_SCHEMA=""
REDIS_PREFIX=""
# The backend being measured, and where its results go ($WORK_DIR/sqlite, $WORK_DIR/pgredis).
BACKEND=""
RUN_DIR=""
# Why the PostgreSQL + Redis run did not happen; empty when it did.
PGREDIS_SKIPPED=""

# Stops the server and the emulator, drops this run's PostgreSQL schema and Redis keys and
# removes the temp dir whatever way the script ends.
cleanup() {
  stop_process "$SERVER_PID"
  stop_process "$EMULATOR_PID"
  stop_process "$FLOOR_PID"
  stop_process "$TRACED_PID"
  stop_process "$SINK_PID"
  if [[ -n $PG_SCHEMA ]]; then
    PGCONNECT_TIMEOUT=5 psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 \
      -c "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1 ||
      printf 'bench: warning: could not drop schema %s on %s\n' "$PG_SCHEMA" "$(redact "$PG_URL")" >&2
  fi
  if [[ -n $REDIS_PREFIX ]]; then
    redis_cli --scan --pattern "$REDIS_PREFIX*" 2>/dev/null |
      xargs -r redis-cli --no-auth-warning -u "$REDIS_URL" DEL >/dev/null 2>&1 ||
      printf 'bench: warning: could not delete the Redis keys %s* on %s\n' "$REDIS_PREFIX" \
        "$(redact "$REDIS_URL")" >&2
  fi
  if [[ -n $WORK_DIR ]]; then
    rm -rf "$WORK_DIR"
  fi
}

# A URL without its password, for messages.
redact() {
  printf '%s' "$1" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#'
}

redis_cli() {
  redis-cli --no-auth-warning -u "$REDIS_URL" "$@"
}

# A short random hex string: names this run's schema and Redis prefix.
random_hex() {
  python3 -c 'import secrets; print(secrets.token_hex(4))'
}

build_release() {
  log "cargo build --release (ztv and the floor)"
  (cd "$REPO_ROOT" && cargo build --release && cargo build --release --example floor) ||
    die "release build failed"
  [[ -x $ZTV ]] || die "no binary at $ZTV after the build"
  [[ -x $FLOOR ]] || die "no binary at $FLOOR after the build"
}

# Starts the floor (bench/floor: a bare axum server doing the same work) on a free port.
start_floor() {
  local port
  port="$(free_port)"
  FLOOR_URL="http://127.0.0.1:$port"
  log "starting the floor on $FLOOR_URL"
  "$FLOOR" "127.0.0.1:$port" >"$WORK_DIR/floor.log" 2>&1 &
  FLOOR_PID=$!
  wait_for_url "$FLOOR_URL/healthz" "$FLOOR_PID" "the floor"
}

# An OTLP/HTTP sink: answers every POST 200 with an empty body (an empty protobuf export
# response) and discards it; each export it received is a line of its log.
start_sink() {
  local port
  port="$(free_port)"
  SINK_URL="http://127.0.0.1:$port"
  log "starting the OTLP sink on $SINK_URL"
  python3 - "$port" >"$WORK_DIR/sink.log" 2>&1 <<'PYTHON' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        size = int(self.headers.get("Content-Length", 0))
        self.rfile.read(size)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
        print(f"export {self.path} {size}", flush=True)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PYTHON
  SINK_PID=$!
  wait_for_url "$SINK_URL/" "$SINK_PID" "the OTLP sink"
}

ensure_tools() {
  command -v curl >/dev/null || die "curl is required"
  command -v python3 >/dev/null || die "python3 is required"
  install_if_missing wrk wrk
}

start_server() {
  local config="$1"
  SERVER_LOG="$RUN_DIR/server.log"
  "$ZTV" --config "$config" serve >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
}

# Starts `ztv emulator` with its default account, client and user on a free port and waits
# (up to 10 s) until its stats route answers.
start_emulator() {
  local port
  port="$(free_port)"
  EMULATOR_URL="http://127.0.0.1:$port"
  EMULATOR_LOG="$WORK_DIR/emulator.log"
  log "starting the Zoom emulator on $EMULATOR_URL"
  "$ZTV" emulator --bind "127.0.0.1:$port" --account-id "$EMU_ACCOUNT_ID" \
    --client-id "$EMU_CLIENT_ID" --client-secret "$EMU_CLIENT_SECRET" \
    --user "emuUser0001:$ZAK_USER" >"$EMULATOR_LOG" 2>&1 &
  EMULATOR_PID=$!
  wait_for_url "$EMULATOR_URL/_emulator/stats" "$EMULATOR_PID" "the emulator"
}

# emulator_stats FILE: the emulator's call counts (JSON) into FILE.
emulator_stats() {
  curl -fsS --max-time 5 -o "$1" "$EMULATOR_URL/_emulator/stats" ||
    die "GET $EMULATOR_URL/_emulator/stats failed"
}

# stat_count FILE KEY → one count of a stats file; KEY is token, zak or obf.
stat_count() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# "emuAccount: 1, other: 2" (or "none") from a stats file.
stat_accounts() {
  python3 -c 'import json, sys
by = json.load(open(sys.argv[1]))["tokenRequestsByAccount"]
print(", ".join(f"{a}: {n}" for a, n in sorted(by.items())) or "none")' "$1"
}

# One real request before the load, so that a wrong key or a broken route fails loudly
# here instead of being measured as a very fast stream of errors.
check_signature_route() {
  local base="$1" key="$2" status body="$RUN_DIR/signature.json"
  status="$(curl -sS -o "$body" -w '%{http_code}' --max-time 5 -X POST \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    --data "$SIGNATURE_BODY" "$base/v1/meeting-sdk/signature")" ||
    die "POST /v1/meeting-sdk/signature: curl failed"
  if [[ $status != 200 ]]; then
    die "POST /v1/meeting-sdk/signature answered $status: $(cat "$body")"
  fi
}

# The same for the ZAK route; this first request goes through to the emulator.
check_zak_route() {
  local base="$1" key="$2" status body="$RUN_DIR/zak.json"
  status="$(curl -sS -o "$body" -w '%{http_code}' --max-time 10 \
    -H "Authorization: Bearer $key" "$base/v1/users/$ZAK_USER/zak")" ||
    die "GET /v1/users/$ZAK_USER/zak: curl failed"
  if [[ $status != 200 ]]; then
    die "GET /v1/users/$ZAK_USER/zak answered $status: $(cat "$body")"
  fi
  python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["zak"]' "$body" 2>/dev/null ||
    die "GET /v1/users/$ZAK_USER/zak answered 200 without a zak: $(cat "$body")"
}

# Clock ticks (user + system) the measured process has used so far.
server_cpu_ticks() {
  cpu_ticks "${MEASURED_PID:-$SERVER_PID}"
}

# run_wrk ROUND NAME URL [LUA_SCRIPT]: the measured run of one round into
# $RUN_DIR/NAME.rROUND.txt, with the CPU the server and wrk used in NAME.rROUND.cpu ("server
# seconds, wrk seconds"). Round 1 starts with a warm-up (NAME.warmup.txt) and the emulator's
# counts in NAME.before.json; NAME.after.json holds them after the latest round.
run_wrk() {
  local round="$1" name="$2" url="$3" script="${4:-}"
  local out="$RUN_DIR/$name.r$round.txt" ticks_before ticks_after wrk_cpu
  local args=(-t "$THREADS" -c "$CONNECTIONS" --latency)
  if [[ -n $script ]]; then
    args+=(-s "$script")
  fi
  if [[ $round == 1 ]]; then
    log "${BACKEND_LABEL[$BACKEND]} $name: warm-up $WARMUP"
    wrk "${args[@]}" -d "$WARMUP" "$url" >"$RUN_DIR/$name.warmup.txt" 2>&1 ||
      die "$name: wrk warm-up failed: $(cat "$RUN_DIR/$name.warmup.txt")"
    emulator_stats "$RUN_DIR/$name.before.json"
  fi
  log "${BACKEND_LABEL[$BACKEND]} $name: round $round of $ROUNDS, $DURATION"
  ticks_before="$(server_cpu_ticks)"
  if ! wrk_cpu="$(timed_wrk "$out" "${args[@]}" -d "$DURATION" "$url")"; then
    cat "$out" >&2
    die "$name: wrk failed"
  fi
  ticks_after="$(server_cpu_ticks)"
  awk -v ticks=$((ticks_after - ticks_before)) -v hz="$(getconf CLK_TCK)" -v wrk="$wrk_cpu" \
    'BEGIN { printf "%.3f %.3f\n", ticks / hz, wrk }' \
    >"$RUN_DIR/$name.r$round.cpu"
  emulator_stats "$RUN_DIR/$name.after.json"
  kill -0 "${MEASURED_PID:-$SERVER_PID}" 2>/dev/null || die "the server died during the $name run"
  if [[ $VERBOSE == 1 ]]; then
    cat "$out" >&2
  fi
}

# median_round NAME: copies the round of NAME with the median req/s (the lower of the middle
# two when there are an even number) to NAME.txt, which the report's rows read.
median_round() {
  local name="$1" round
  round="$(for ((r = 1; r <= ROUNDS; r++)); do
    printf '%s %s\n' "$(requests_per_second "$RUN_DIR/$name.r$r.txt")" "$r"
  done | sort -g | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2) { print $2 }')"
  cp "$RUN_DIR/$name.r$round.txt" "$RUN_DIR/$name.txt"
}

# --- parsing wrk's report -------------------------------------------------------------

requests_per_second() {
  awk '/^Requests\/sec:/ { print $2 }' "$1"
}

# "  123456 requests in 10.00s, 12.34MB read" → 123456.
request_count() {
  awk '/ requests in / { print $1 }' "$1"
}

# wrk prints this line only when there were such answers.
non_2xx_count() {
  awk '/Non-2xx or 3xx responses:/ { n = $NF } END { print n + 0 }' "$1"
}

# "Socket errors: connect 0, read 0, write 0, timeout 0" → their sum (0 when absent).
socket_error_count() {
  awk '/Socket errors:/ { gsub(/,/, ""); n = $4 + $6 + $8 + $10 } END { print n + 0 }' "$1"
}

# --- report -----------------------------------------------------------------------------

peak_rss_mib() {
  awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"
}

cpu_model() {
  local model
  model="$(grep -m1 -E '^(model name|Hardware|cpu model)' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')" || true
  if [[ -z $model ]] && command -v lscpu >/dev/null; then
    model="$(lscpu | awk -F: '/^Model name/ { sub(/^ +/, "", $2); print $2; exit }')"
  fi
  printf '%s' "${model:-unknown}"
}

git_commit() {
  git -C "$REPO_ROOT" describe --always --dirty --abbrev=12 2>/dev/null || printf 'unknown'
}

# verdict MEASURED OP TARGET → "met" / "NOT met" (floating point, hence awk).
verdict() {
  awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
    ok = (op == ">=") ? (a >= b) : (a < b)
    print ok ? "met" : "NOT met"
  }'
}

# route_row LABEL BACKEND NAME: one line of the table: the median round's figures
# ($WORK_DIR/BACKEND/NAME.txt), and the median CPU per request of server + wrk.
route_row() {
  local file="$WORK_DIR/$2/$3.txt" cpu
  read -r -a cpu <<<"$(cpu_per_request "$WORK_DIR/$2" "$3")"
  printf '%-34s %-17s %10.1f %8s %8s %8s %8s %14s\n' "$1" "${BACKEND_LABEL[$2]}" \
    "$(requests_per_second "$file")" "$(percentile_ms "$file" 50)" \
    "$(percentile_ms "$file" 99)" "$(non_2xx_count "$file")" "$(socket_error_count "$file")" \
    "${cpu[0]} + ${cpu[1]}"
}

# round_ratios DIR A B → "0.81 0.79 0.83": per round, A's req/s over B's.
round_ratios() {
  local r
  for ((r = 1; r <= ROUNDS; r++)); do
    ratio "$(requests_per_second "$1/$2.r$r.txt")" "$(requests_per_second "$1/$3.r$r.txt")"
    printf ' '
  done | sed 's/ $//'
}

# round_p99_ratios DIR A B → per round, A's p99 over B's.
round_p99_ratios() {
  local r
  for ((r = 1; r <= ROUNDS; r++)); do
    ratio "$(percentile_ms "$1/$2.r$r.txt" 99)" "$(percentile_ms "$1/$3.r$r.txt" 99)"
    printf ' '
  done | sed 's/ $//'
}

# median_of "0.81 0.79 0.83" → 0.81 (the lower of the middle two for an even count).
median_of() {
  tr ' ' '\n' <<<"$1" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# cpu_per_request DIR NAME → "52 24": the median over the rounds of the server's and wrk's CPU
# time per request, in microseconds.
cpu_per_request() {
  local r s w server="" wrk="" requests
  for ((r = 1; r <= ROUNDS; r++)); do
    requests="$(request_count "$1/$2.r$r.txt")"
    read -r s w <"$1/$2.r$r.cpu"
    server+="$(awk -v s="$s" -v n="$requests" 'BEGIN { printf "%.0f ", s * 1e6 / n }')"
    wrk+="$(awk -v w="$w" -v n="$requests" 'BEGIN { printf "%.0f ", w * 1e6 / n }')"
  done
  printf '%s %s\n' "$(median_of "${server% }")" "$(median_of "${wrk% }")"
}

# ratio A B → A / B with two decimals.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

# ZAK requests answered 2xx by a wrk report (requests minus non-2xx).
served_2xx() {
  echo $(($(request_count "$1") - $(non_2xx_count "$1")))
}

# stat_delta BEFORE AFTER KEY → how much one count of the emulator grew between two files.
stat_delta() {
  echo $(($(stat_count "$2" "$3") - $(stat_count "$1" "$3")))
}

# "emuAccount: 1, other: 2" (or "none"): the S2S token requests per account between two files.
stat_accounts_delta() {
  python3 -c 'import json, sys
before = json.load(open(sys.argv[1]))["tokenRequestsByAccount"]
after = json.load(open(sys.argv[2]))["tokenRequestsByAccount"]
grown = {a: n - before.get(a, 0) for a, n in after.items() if n != before.get(a, 0)}
print(", ".join(f"{a}: {n}" for a, n in sorted(grown.items())) or "none")' "$1" "$2"
}

# print_upstream_report BACKEND…: the emulator's counts over each backend's whole run (from
# just before its API key was created to just after its last measured run), then the ZAK route.
print_upstream_report() {
  local backend dir key label
  echo
  echo "upstream calls counted by the emulator (GET /_emulator/stats before and after each backend's"
  echo "run: the route checks, warm-ups and measured runs):"
  printf '  %-20s' ""
  for backend in "$@"; do
    printf ' %18s' "${BACKEND_LABEL[$backend]}"
  done
  echo
  for key in token zak obf; do
    case $key in
      token) label="S2S token requests" ;;
      zak) label="ZAK calls" ;;
      obf) label="OBF calls" ;;
    esac
    printf '  %-20s' "$label"
    for backend in "$@"; do
      dir="$WORK_DIR/$backend"
      printf ' %18s' "$(stat_delta "$dir/start.json" "$dir/end.json" "$key")"
    done
    echo
  done
  for backend in "$@"; do
    dir="$WORK_DIR/$backend"
    printf '  S2S token requests by account, %s: %s\n' "${BACKEND_LABEL[$backend]}" \
      "$(stat_accounts_delta "$dir/start.json" "$dir/end.json")"
  done

  echo
  echo "ZAK route, GET /v1/users/$ZAK_USER/zak: requests served (2xx) vs upstream calls"
  local warm_served measured_served all_served zak_calls measured_zak measured_token r
  for backend in "$@"; do
    dir="$WORK_DIR/$backend"
    warm_served="$(served_2xx "$dir/zak.warmup.txt")"
    measured_served=0
    for ((r = 1; r <= ROUNDS; r++)); do
      measured_served=$((measured_served + $(served_2xx "$dir/zak.r$r.txt")))
    done
    # + 1: the check before the load.
    all_served=$((1 + warm_served + measured_served))
    zak_calls="$(stat_delta "$dir/start.json" "$dir/end.json" zak)"
    measured_zak="$(stat_delta "$dir/zak.before.json" "$dir/zak.after.json" zak)"
    measured_token="$(stat_delta "$dir/zak.before.json" "$dir/zak.after.json" token)"
    printf '  %-17s %-12s %10s served %6s ZAK calls   (1 check + %s warm-up + %s measured)\n' \
      "${BACKEND_LABEL[$backend]}" "whole run" "$all_served" "$zak_calls" "$warm_served" \
      "$measured_served"
    printf '  %-17s %-12s %10s served %6s ZAK calls %6s S2S token requests\n' \
      "" "measured runs" "$measured_served" "$measured_zak" "$measured_token"
  done
}

# target_row LABEL MEASURED TARGET RESULT
target_row() {
  printf '%-34s %12s %12s   %s\n' "$@"
}

print_report() {
  local sqlite_dir="$WORK_DIR/$SQLITE" pg_dir="$WORK_DIR/$PGREDIS" backends=("$SQLITE")
  local sign_rps sign_ratios sign_ratio zak_ratios zak_ratio sign_p99 rss
  local hello_floor_ratios hello_floor sign_floor_ratios sign_floor hello_p99s hello_p99 sign_p99s
  local sign_p99_floor
  hello_floor_ratios="$(round_ratios "$sqlite_dir" healthz floor_hello)"
  hello_floor="$(median_of "$hello_floor_ratios")"
  sign_floor_ratios="$(round_ratios "$sqlite_dir" signature floor_signature)"
  sign_floor="$(median_of "$sign_floor_ratios")"
  hello_p99s="$(round_p99_ratios "$sqlite_dir" healthz floor_hello)"
  hello_p99="$(median_of "$hello_p99s")"
  sign_p99s="$(round_p99_ratios "$sqlite_dir" signature floor_signature)"
  sign_p99_floor="$(median_of "$sign_p99s")"
  sign_rps="$(requests_per_second "$sqlite_dir/signature.txt")"
  sign_ratios="$(round_ratios "$sqlite_dir" signature healthz)"
  sign_ratio="$(median_of "$sign_ratios")"
  zak_ratios="$(round_ratios "$sqlite_dir" zak healthz)"
  zak_ratio="$(median_of "$zak_ratios")"
  sign_p99="$(percentile_ms "$sqlite_dir/signature.txt" 99)"
  rss="$(cat "$sqlite_dir/rss")"
  if [[ -z $PGREDIS_SKIPPED ]]; then
    backends+=("$PGREDIS")
  fi

  echo
  echo "ztv benchmark: wrk, $THREADS threads, $CONNECTIONS connections, $ROUNDS interleaved rounds of"
  echo "$DURATION per route (after a $WARMUP warm-up); each row is the route's median round"
  echo "machine: $(nproc) CPUs, $(cpu_model)"
  echo "commit:  $(git_commit)"
  echo "server:  $("$ZTV" --version), release build, shipped defaults (JSON access log at info,"
  echo "         audit and metrics on), one server at a time; the floor (bench/floor) beside it"
  printf '  %-17s SQLite file, in-process cache and rate limits (%s log lines written)\n' \
    "${BACKEND_LABEL[$SQLITE]}" "$(cat "$sqlite_dir/log_lines")"
  if [[ -z $PGREDIS_SKIPPED ]]; then
    printf '  %-17s PostgreSQL %s (schema %s), Redis %s (key prefix %s)\n' \
      "${BACKEND_LABEL[$PGREDIS]}" "$(cat "$pg_dir/pg_version")" "$PG_SCHEMA" \
      "$(cat "$pg_dir/redis_version")" "$REDIS_PREFIX"
    printf '  %-17s (%s log lines written; Redis keys after the run: %s)\n' "" \
      "$(cat "$pg_dir/log_lines")" "$(cat "$pg_dir/redis_keys")"
  else
    echo "skipped: ${BACKEND_LABEL[$PGREDIS]} run: $PGREDIS_SKIPPED"
  fi
  echo
  printf '%-34s %-17s %10s %8s %8s %8s %8s %14s\n' "route" "backend" "req/s" "p50 ms" "p99 ms" \
    "non-2xx" "sock err" "CPU us/req"
  route_row "floor GET  /healthz" "$SQLITE" floor_hello
  route_row "GET  /healthz" "$SQLITE" healthz
  route_row "floor POST signature (bare signer)" "$SQLITE" floor_signature
  local backend first name label
  for name in signature zak; do
    first=1
    for backend in "${backends[@]}"; do
      if [[ $first == 1 ]]; then
        case $name in
          signature) label="POST /v1/meeting-sdk/signature" ;;
          zak) label="GET  /v1/users/{userId}/zak (warm)" ;;
        esac
        first=0
      else
        label=""
      fi
      route_row "$label" "$backend" "$name"
    done
  done
  echo
  echo "peak RSS of the server (VmHWM):"
  for backend in "${backends[@]}"; do
    printf '  %-17s %8s MiB\n' "${BACKEND_LABEL[$backend]}" "$(cat "$WORK_DIR/$backend/rss")"
  done
  echo
  target_row "target" "measured" "target" "result"
  target_row "healthz / floor hello, req/s" "$hello_floor" ">= $TARGET_FLOOR_RATIO" \
    "$(verdict "$hello_floor" ">=" "$TARGET_FLOOR_RATIO")"
  target_row "signature / floor signer, req/s" "$sign_floor" ">= $TARGET_FLOOR_RATIO" \
    "$(verdict "$sign_floor" ">=" "$TARGET_FLOOR_RATIO")"
  target_row "healthz p99 / floor hello p99" "$hello_p99" "<= $TARGET_P99_FACTOR" \
    "$(verdict "$hello_p99" "<" "$(awk -v f="$TARGET_P99_FACTOR" 'BEGIN { print f + 0.0001 }')")"
  target_row "signature p99 / floor signer p99" "$sign_p99_floor" "<= $TARGET_P99_FACTOR" \
    "$(verdict "$sign_p99_floor" "<" "$(awk -v f="$TARGET_P99_FACTOR" 'BEGIN { print f + 0.0001 }')")"
  target_row "peak RSS" "$rss MiB" "< $TARGET_RSS_MIB MiB" \
    "$(verdict "$rss" "<" "$TARGET_RSS_MIB")"
  target_row "signature p99 latency" "$sign_p99 ms" "none" "(for information)"
  target_row "signature/healthz req/s ratio" "$sign_ratio" "none" "(for information)"
  target_row "zak/healthz req/s ratio" "$zak_ratio" "none" "(for information)"
  echo "  (ratios are medians of the rounds': healthz/floor $hello_floor_ratios;"
  echo "   signature/floor $sign_floor_ratios; p99 healthz/floor $hello_p99s;"
  echo "   p99 signature/floor $sign_p99s; signature/healthz $sign_ratios; zak/healthz $zak_ratios)"
  echo "  (CPU us/req: the server's + wrk's CPU time per request, median of the rounds)"
  if [[ -z $PGREDIS_SKIPPED ]]; then
    local pg_sign_p99 pg_rss
    pg_sign_p99="$(percentile_ms "$pg_dir/signature.txt" 99)"
    pg_rss="$(cat "$pg_dir/rss")"
    target_row "postgres+redis: signature p99" "$pg_sign_p99 ms" "< $TARGET_P99_MS ms" \
      "$(verdict "$pg_sign_p99" "<" "$TARGET_P99_MS")"
    target_row "postgres+redis: peak RSS" "$pg_rss MiB" "< $TARGET_RSS_MIB MiB" \
      "$(verdict "$pg_rss" "<" "$TARGET_RSS_MIB")"
    target_row "signature req/s, pg+redis/sqlite" \
      "$(ratio "$(requests_per_second "$pg_dir/signature.txt")" "$sign_rps")" "none" \
      "(for information)"
    target_row "zak req/s, pg+redis/sqlite" \
      "$(ratio "$(requests_per_second "$pg_dir/zak.txt")" \
        "$(requests_per_second "$sqlite_dir/zak.txt")")" "none" "(for information)"
  fi

  if [[ $TRACES == 1 ]]; then
    print_traces_report
  fi
  print_upstream_report "${backends[@]}"
}

# The traces-on server against the traces-off one, in the same rounds.
print_traces_report() {
  local dir="$WORK_DIR/$SQLITE" name ratios p99s label
  echo
  echo "traces on (telemetry.otlp_endpoint set, exporting to a local sink that discards) vs off:"
  printf '%-34s %-17s %10s %8s %8s %8s %8s %14s\n' "route" "traces" "req/s" "p50 ms" "p99 ms" \
    "non-2xx" "sock err" "CPU us/req"
  for name in healthz signature zak; do
    case $name in
      healthz) label="GET  /healthz" ;;
      signature) label="POST /v1/meeting-sdk/signature" ;;
      zak) label="GET  /v1/users/{userId}/zak (warm)" ;;
    esac
    route_row_as "$label" "off" "$dir" "$name"
    route_row_as "" "on" "$dir" "${name}_traced"
  done
  for name in healthz signature zak; do
    ratios="$(round_ratios "$dir" "${name}_traced" "$name")"
    p99s="$(round_p99_ratios "$dir" "${name}_traced" "$name")"
    printf '  on/off %-10s req/s %s (rounds: %s)   p99 %s (rounds: %s)\n' "$name" \
      "$(median_of "$ratios")" "$ratios" "$(median_of "$p99s")" "$p99s"
  done
  printf '  peak RSS with traces on: %s MiB; OTLP exports the sink received: %s\n' \
    "$(cat "$dir/traced_rss")" "$(cat "$dir/exports")"
}

# route_row_as LABEL COLUMN DIR NAME: route_row with COLUMN in the backend's place.
route_row_as() {
  local file="$3/$4.txt" cpu
  read -r -a cpu <<<"$(cpu_per_request "$3" "$4")"
  printf '%-34s %-17s %10.1f %8s %8s %8s %8s %14s\n' "$1" "$2" \
    "$(requests_per_second "$file")" "$(percentile_ms "$file" 50)" \
    "$(percentile_ms "$file" 99)" "$(non_2xx_count "$file")" "$(socket_error_count "$file")" \
    "${cpu[0]} + ${cpu[1]}"
}

# require_all_2xx NAME…: non-2xx answers mean we measured error paths, not the service: that
# run is invalid.
require_all_2xx() {
  local name file count r
  for name in "$@"; do
    for ((r = 1; r <= ROUNDS; r++)); do
      file="$RUN_DIR/$name.r$r.txt"
      [[ -n $(requests_per_second "$file") ]] || die "$name: cannot read wrk's report: $(cat "$file")"
      count="$(non_2xx_count "$file")"
      if [[ $count != 0 ]]; then
        cat "$file" >&2
        die "${BACKEND_LABEL[$BACKEND]} $name round $r: $count non-2xx answers under load"
      fi
    done
    median_round "$name"
  done
}

# --- PostgreSQL + Redis -----------------------------------------------------------------

# skip_pgredis REASON: the PostgreSQL + Redis run will not happen; says so at once.
skip_pgredis() {
  PGREDIS_SKIPPED="$1"
  log "skipped: ${BACKEND_LABEL[$PGREDIS]} run: $1"
}

# Checks that PostgreSQL and Redis answer, then creates this run's schema and picks its Redis
# key prefix (both dropped by cleanup). Returns 1 (with PGREDIS_SKIPPED set) when they cannot
# be used.
prepare_pgredis() {
  local pg redis answer suffix schema
  pg="$(redact "$PG_URL")"
  redis="$(redact "$REDIS_URL")"
  if ! command -v psql >/dev/null; then
    skip_pgredis "psql is not installed (needed to create a schema on $pg)"
    return 1
  fi
  if command -v pg_isready >/dev/null && ! pg_isready -q -t 5 -d "$PG_URL" >/dev/null 2>&1; then
    skip_pgredis "PostgreSQL at $pg does not answer (pg_isready)"
    return 1
  fi
  if ! command -v redis-cli >/dev/null; then
    skip_pgredis "redis-cli is not installed (needed to check Redis at $redis)"
    return 1
  fi
  answer="$(timeout 10 redis-cli --no-auth-warning -u "$REDIS_URL" ping 2>&1 | head -n 1)" || true
  if [[ $answer != PONG ]]; then
    skip_pgredis "Redis at $redis does not answer (redis-cli ping: ${answer:-no answer})"
    return 1
  fi

  suffix="$(random_hex)"
  schema="ztv_bench_$suffix"
  if ! answer="$(PGCONNECT_TIMEOUT=5 psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 \
    -c "CREATE SCHEMA $schema" 2>&1)"; then
    skip_pgredis "could not create schema $schema on $pg: $answer"
    return 1
  fi
  PG_SCHEMA="$schema"
  REDIS_PREFIX="ztv-bench-$suffix:"
  mkdir -p "$WORK_DIR/$PGREDIS"
  PGCONNECT_TIMEOUT=5 psql "$PG_URL" -qAt -c 'SHOW server_version' 2>/dev/null |
    awk '{ print $1; exit }' >"$WORK_DIR/$PGREDIS/pg_version" || true
  redis_cli INFO server 2>/dev/null | tr -d '\r' |
    awk -F: '/^redis_version:/ { print $2 }' >"$WORK_DIR/$PGREDIS/redis_version" || true
}

# The PostgreSQL URL with this run's schema as the only one on the search path, through the
# `options` parameter that reaches the server (the service's migrations create the tables there).
pg_server_url() {
  local separator="?"
  if [[ $PG_URL == *\?* ]]; then
    separator="&"
  fi
  printf '%s%soptions=-c%%20search_path%%3D%s' "$PG_URL" "$separator" "$PG_SCHEMA"
}

# base64 of 32 random bytes: cache.encryption_key of the second server.
random_encryption_key() {
  python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())'
}

# The second server must really use Redis: a limiter that came up degraded would limit
# in-process, and the figures would not be PostgreSQL + Redis ones.
require_redis_in_use() {
  local base="$1" body="$RUN_DIR/readyz.json" status
  status="$(curl -sS -o "$body" -w '%{http_code}' --max-time 5 "$base/readyz")" ||
    die "GET /readyz: curl failed"
  python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "ready" and r["store"] == "ok" and r["redis"] == "ok"
assert r["rateLimits"] == {"backend": "redis", "degraded": False}' "$body" 2>/dev/null ||
    die "the ${BACKEND_LABEL[$BACKEND]} server is not using PostgreSQL and Redis as configured" \
      "(GET /readyz answered $status: $(cat "$body"))"
}

# --- one backend ------------------------------------------------------------------------

# run_backend BACKEND DATABASE_URL [REDIS_URL ENCRYPTION_KEY KEY_PREFIX]: a server of its own
# with a new API key, the route checks and the wrk runs into $WORK_DIR/BACKEND, the emulator's
# counts before and after (start.json, end.json), the server's peak RSS (rss) and log size
# (log_lines); the server is stopped at the end so the next one has the CPUs to itself.
run_backend() {
  BACKEND="$1"
  shift
  RUN_DIR="$WORK_DIR/$BACKEND"
  mkdir -p "$RUN_DIR"
  local config="$RUN_DIR/ztv.toml" port base key names=(signature zak)
  local traced_config="$RUN_DIR/traced.toml" traced_base="" traced_key=""
  if [[ $BACKEND == "$SQLITE" ]]; then
    names=(floor_hello healthz floor_signature signature zak)
  fi
  port="$(free_port)"
  base="http://127.0.0.1:$port"
  write_bench_config "$config" "$port" "$EMULATOR_URL" "$@"
  emulator_stats "$RUN_DIR/start.json"
  key="$(create_api_key "$ZTV" "$config" bench meeting-sdk:signature meeting-sdk:host zak:read)"

  log "starting ztv (${BACKEND_LABEL[$BACKEND]}) on $base"
  start_server "$config"
  wait_for_url "$base/healthz" "$SERVER_PID" "the server"
  if [[ $BACKEND == "$PGREDIS" ]]; then
    require_redis_in_use "$base"
  fi
  check_signature_route "$base" "$key"
  check_zak_route "$base" "$key"
  if [[ $BACKEND == "$SQLITE" && $TRACES == 1 ]]; then
    # The same server with a store of its own and traces on, beside the first.
    port="$(free_port)"
    traced_base="http://127.0.0.1:$port"
    write_bench_config "$traced_config" "$port" "$EMULATOR_URL" "sqlite://$RUN_DIR/traced.db"
    printf '\n[telemetry]\notlp_endpoint = "%s"\n' "$SINK_URL" >>"$traced_config"
    traced_key="$(create_api_key "$ZTV" "$traced_config" bench meeting-sdk:signature zak:read)"
    log "starting ztv with traces on $traced_base (exporting to $SINK_URL)"
    "$ZTV" --config "$traced_config" serve >"$RUN_DIR/traced.log" 2>&1 &
    TRACED_PID=$!
    wait_for_url "$traced_base/healthz" "$TRACED_PID" "the server with traces"
    check_signature_route "$traced_base" "$traced_key"
    check_zak_route "$traced_base" "$traced_key"
    names+=(healthz_traced signature_traced zak_traced)
  fi

  local round
  for ((round = 1; round <= ROUNDS; round++)); do
    # The floor's requests carry the same bytes (the key too, which it ignores).
    if [[ $BACKEND == "$SQLITE" ]]; then
      MEASURED_PID="$FLOOR_PID" run_wrk "$round" floor_hello "$FLOOR_URL/healthz"
      run_wrk "$round" healthz "$base/healthz"
      ZTV_BENCH_KEY="$key" ZTV_BENCH_METHOD=POST ZTV_BENCH_BODY="$SIGNATURE_BODY" \
        MEASURED_PID="$FLOOR_PID" \
        run_wrk "$round" floor_signature "$FLOOR_URL/v1/meeting-sdk/signature" "$LUA_SCRIPT"
    fi
    ZTV_BENCH_KEY="$key" ZTV_BENCH_METHOD=POST ZTV_BENCH_BODY="$SIGNATURE_BODY" \
      run_wrk "$round" signature "$base/v1/meeting-sdk/signature" "$LUA_SCRIPT"
    ZTV_BENCH_KEY="$key" ZTV_BENCH_METHOD=GET ZTV_BENCH_BODY="" \
      run_wrk "$round" zak "$base/v1/users/$ZAK_USER/zak" "$LUA_SCRIPT"
    if [[ -n $traced_base ]]; then
      MEASURED_PID="$TRACED_PID" run_wrk "$round" healthz_traced "$traced_base/healthz"
      ZTV_BENCH_KEY="$traced_key" ZTV_BENCH_METHOD=POST ZTV_BENCH_BODY="$SIGNATURE_BODY" \
        MEASURED_PID="$TRACED_PID" \
        run_wrk "$round" signature_traced "$traced_base/v1/meeting-sdk/signature" "$LUA_SCRIPT"
      ZTV_BENCH_KEY="$traced_key" ZTV_BENCH_METHOD=GET ZTV_BENCH_BODY="" \
        MEASURED_PID="$TRACED_PID" \
        run_wrk "$round" zak_traced "$traced_base/v1/users/$ZAK_USER/zak" "$LUA_SCRIPT"
    fi
  done
  kill -0 "$EMULATOR_PID" 2>/dev/null || die "the emulator died during the runs"
  emulator_stats "$RUN_DIR/end.json"
  if [[ $BACKEND == "$PGREDIS" ]]; then
    # Still on Redis after the load (not fallen back to in-process limits).
    require_redis_in_use "$base"
    # Which keys the server wrote (rate-limit keys expire as soon as the caller is under its
    # limit again, so mostly the shared S2S token remains).
    redis_cli --scan --pattern "$REDIS_PREFIX*" | sed "s/^$REDIS_PREFIX//" | sort |
      paste -sd, - | sed 's/,/, /g' >"$RUN_DIR/redis_keys"
  fi

  peak_rss_mib >"$RUN_DIR/rss"
  stop_process "$SERVER_PID"
  SERVER_PID=""
  if [[ -n $TRACED_PID ]]; then
    awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$TRACED_PID/status" >"$RUN_DIR/traced_rss"
    # SIGTERM sends what is still queued before it exits.
    stop_process "$TRACED_PID"
    TRACED_PID=""
    grep -c '^export ' "$WORK_DIR/sink.log" >"$RUN_DIR/exports" || true
  fi
  wc -l <"$SERVER_LOG" | tr -d ' ' >"$RUN_DIR/log_lines"
  require_all_2xx "${names[@]}"
}

main() {
  trap cleanup EXIT
  # Turn Ctrl-C and kill into a normal exit so that cleanup stops the server.
  trap 'exit 130' INT
  trap 'exit 143' TERM

  cd "$REPO_ROOT"
  clear_ztv_environment
  ensure_tools
  build_release

  WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ztv-bench.XXXXXX")"
  start_emulator
  start_floor
  if [[ $TRACES == 1 ]]; then
    start_sink
  fi

  run_backend "$SQLITE" "sqlite://$WORK_DIR/$SQLITE/ztv.db"
  if prepare_pgredis; then
    run_backend "$PGREDIS" "$(pg_server_url)" "$REDIS_URL" "$(random_encryption_key)" \
      "$REDIS_PREFIX"
  fi

  print_report
}

main "$@"
