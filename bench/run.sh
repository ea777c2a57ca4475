#!/usr/bin/env bash
# Load benchmark of ztv: `bash bench/run.sh` from anywhere in the repository.
#
# Builds the release binary, starts it on a free port against a throw-away SQLite database
# (JSON logs on, as in production), then loads two routes with wrk:
#   a) GET  /healthz                      – the baseline: routing, middleware, logging, no work
#   b) POST /v1/meeting-sdk/signature     – API-key check, body validation, HS256 signing
# and prints requests/s, p50/p99 latency and the server's peak RSS next to the targets.
# A missed target is reported, not asserted: the script fails only when the run itself is
# broken (build, start-up, a route that does not answer 200, non-2xx answers under load).
#
# Environment: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (64), BENCH_THREADS (2),
# BENCH_VERBOSE=1 to also print wrk's raw output.
set -euo pipefail

readonly DURATION="${BENCH_DURATION:-10s}"
readonly CONNECTIONS="${BENCH_CONNECTIONS:-64}"
readonly THREADS="${BENCH_THREADS:-2}"
readonly VERBOSE="${BENCH_VERBOSE:-0}"
# Short warm-up so that connection set-up, the allocator and the CPU frequency settle
# before anything is measured.
readonly WARMUP="2s"

# Targets (see the result table): signing may cost at most 20 % of the baseline throughput.
readonly TARGET_RATIO="0.80"
readonly TARGET_P99_MS="5"
readonly TARGET_RSS_MIB="64"

readonly SIGNATURE_BODY='{"meetingNumber":"123456789","role":0}'

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly LUA_SCRIPT="$REPO_ROOT/bench/signature.lua"
readonly ZTV="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/ztv"

# Set by the steps below; read by cleanup.
WORK_DIR=""
SERVER_PID=""
SERVER_LOG=""

log() { printf '==> %s\n' "$*" >&2; }

die() {
  printf 'bench: error: %s\n' "$*" >&2
  # The server's own words are usually the quickest way to the cause.
  if [[ -n $SERVER_LOG && -s $SERVER_LOG ]]; then
    printf -- '--- last lines of the server log (%s) ---\n' "$SERVER_LOG" >&2
    tail -n 20 "$SERVER_LOG" >&2
  fi
  exit 1
}

# Stops the server and removes the temp dir whatever way the script ends.
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ -n $WORK_DIR ]]; then
    rm -rf "$WORK_DIR"
  fi
}

# ZTV_* variables override the config file; a developer's shell may have some set (say a
# real database URL), and the benchmark must not pick them up.
clear_ztv_environment() {
  local name
  for name in $(compgen -e); do
    if [[ $name == ZTV_* ]]; then
      unset "$name"
    fi
  done
  # Production runs at the default level; a RUST_LOG=debug left in the shell would make the
  # figures meaningless.
  export RUST_LOG=info
}

build_release() {
  log "cargo build --release"
  (cd "$REPO_ROOT" && cargo build --release) || die "release build failed"
  [[ -x $ZTV ]] || die "no binary at $ZTV after the build"
}

ensure_tools() {
  command -v curl >/dev/null || die "curl is required"
  command -v python3 >/dev/null || die "python3 is required"
  if command -v wrk >/dev/null; then
    return
  fi
  log "installing wrk"
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    sudo="sudo"
  fi
  # sudo drops the environment, hence `env` for the non-interactive front end.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  command -v wrk >/dev/null || die "wrk is still missing after apt-get install"
}

# Asks the kernel for a port nobody uses (bind to port 0), so parallel runs do not clash.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

write_config() {
  local config="$1" port="$2"
  cat >"$config" <<EOF
log_format = "json"

[server]
bind = "127.0.0.1:$port"

[database]
url = "sqlite://$WORK_DIR/ztv.db"

[accounts.bench.meeting_sdk]
client_id = "benchSdkKey"
client_secret = "bench-secret-0123456789abcdef"
EOF
}

# Prints a new API key allowed to ask for Meeting SDK signatures.
create_api_key() {
  local config="$1" output
  output="$("$ZTV" --config "$config" clients create --name bench \
    --scope meeting-sdk:signature --scope meeting-sdk:host --json)" ||
    die "ztv clients create failed"
  printf '%s' "$output" | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])' ||
    die "no key in the output of ztv clients create: $output"
}

start_server() {
  local config="$1"
  SERVER_LOG="$WORK_DIR/server.log"
  "$ZTV" --config "$config" serve >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
}

# Polls /healthz for up to 10 s; gives up early when the server has already exited.
wait_until_healthy() {
  local base="$1"
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null --max-time 1 "$base/healthz" 2>/dev/null; then
      return
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited during start-up"
    sleep 0.1
  done
  die "GET /healthz did not answer 200 within 10 s"
}

# One real request before the load, so that a wrong key or a broken route fails loudly
# here instead of being measured as a very fast stream of errors.
check_signature_route() {
  local base="$1" key="$2" status body="$WORK_DIR/signature.json"
  status="$(curl -sS -o "$body" -w '%{http_code}' --max-time 5 -X POST \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    --data "$SIGNATURE_BODY" "$base/v1/meeting-sdk/signature")" ||
    die "POST /v1/meeting-sdk/signature: curl failed"
  if [[ $status != 200 ]]; then
    die "POST /v1/meeting-sdk/signature answered $status: $(cat "$body")"
  fi
}

# run_wrk NAME URL [LUA_SCRIPT]: a warm-up, then the measured run into $WORK_DIR/NAME.txt.
run_wrk() {
  local name="$1" url="$2" script="${3:-}" out="$WORK_DIR/$1.txt"
  local args=(-t "$THREADS" -c "$CONNECTIONS" --latency)
  if [[ -n $script ]]; then
    args+=(-s "$script")
  fi
  log "$name: warm-up $WARMUP, then $DURATION"
  wrk "${args[@]}" -d "$WARMUP" "$url" >/dev/null 2>&1 || die "$name: wrk warm-up failed"
  if ! wrk "${args[@]}" -d "$DURATION" "$url" >"$out" 2>&1; then
    cat "$out" >&2
    die "$name: wrk failed"
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during the $name run"
  if [[ $VERBOSE == 1 ]]; then
    cat "$out" >&2
  fi
}

# --- parsing wrk's report -------------------------------------------------------------

requests_per_second() {
  awk '/^Requests\/sec:/ { print $2 }' "$1"
}

# wrk prints latencies with a unit (us, ms, s, m); the table is in milliseconds.
to_ms() {
  awk -v value="$1" 'BEGIN {
    number = value + 0; unit = value; sub(/^[0-9.]+/, "", unit)
    if (unit == "us") number /= 1000
    else if (unit == "s") number *= 1000
    else if (unit == "m") number *= 60000
    else if (unit != "ms") { print "?"; exit }
    printf "%.2f", number
  }'
}

# percentile_ms FILE 99 → the 99% line of "Latency Distribution", in ms.
percentile_ms() {
  local raw
  raw="$(awk -v want="$2%" '/Latency Distribution/ { inside = 1; next }
                            inside && $1 == want { print $2; exit }' "$1")"
  [[ -n $raw ]] || die "no $2% latency in $1"
  to_ms "$raw"
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

route_row() {
  local label="$1" file="$2"
  printf '%-32s %10.1f %8s %8s %8s %8s\n' "$label" "$(requests_per_second "$file")" \
    "$(percentile_ms "$file" 50)" "$(percentile_ms "$file" 99)" \
    "$(non_2xx_count "$file")" "$(socket_error_count "$file")"
}

print_report() {
  local health="$WORK_DIR/healthz.txt" sign="$WORK_DIR/signature.txt"
  local health_rps sign_rps ratio sign_p99 rss log_lines
  health_rps="$(requests_per_second "$health")"
  sign_rps="$(requests_per_second "$sign")"
  ratio="$(awk -v s="$sign_rps" -v h="$health_rps" 'BEGIN { printf "%.2f", s / h }')"
  sign_p99="$(percentile_ms "$sign" 99)"
  rss="$(peak_rss_mib)"
  log_lines="$(wc -l <"$SERVER_LOG")"

  echo
  echo "ztv benchmark: wrk, $THREADS threads, $CONNECTIONS connections, $DURATION per route (after a $WARMUP warm-up)"
  echo "machine: $(nproc) CPUs, $(cpu_model)"
  echo "commit:  $(git_commit)"
  echo "server:  $("$ZTV" --version), release build, JSON logs at info ($log_lines lines written)"
  echo
  printf '%-32s %10s %8s %8s %8s %8s\n' "route" "req/s" "p50 ms" "p99 ms" "non-2xx" "sock err"
  route_row "GET  /healthz" "$health"
  route_row "POST /v1/meeting-sdk/signature" "$sign"
  echo
  echo "peak RSS of the server (VmHWM): $rss MiB"
  echo
  printf '%-34s %12s %12s   %s\n' "target" "measured" "target" "result"
  printf '%-34s %12s %12s   %s\n' "signature/healthz req/s ratio" "$ratio" ">= $TARGET_RATIO" \
    "$(verdict "$ratio" ">=" "$TARGET_RATIO")"
  printf '%-34s %12s %12s   %s\n' "signature p99 latency" "$sign_p99 ms" "< $TARGET_P99_MS ms" \
    "$(verdict "$sign_p99" "<" "$TARGET_P99_MS")"
  printf '%-34s %12s %12s   %s\n' "peak RSS" "$rss MiB" "< $TARGET_RSS_MIB MiB" \
    "$(verdict "$rss" "<" "$TARGET_RSS_MIB")"
}

# Non-2xx answers mean we measured error paths, not the service: that run is invalid.
require_all_2xx() {
  local name file count
  for name in healthz signature; do
    file="$WORK_DIR/$name.txt"
    [[ -n $(requests_per_second "$file") ]] || die "$name: cannot read wrk's report: $(cat "$file")"
    count="$(non_2xx_count "$file")"
    if [[ $count != 0 ]]; then
      cat "$file" >&2
      die "$name: $count non-2xx answers under load"
    fi
  done
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
  local config="$WORK_DIR/ztv.toml" port base key
  port="$(free_port)"
  base="http://127.0.0.1:$port"
  write_config "$config" "$port"
  key="$(create_api_key "$config")"

  log "starting ztv on $base"
  start_server "$config"
  wait_until_healthy "$base"
  check_signature_route "$base" "$key"

  run_wrk healthz "$base/healthz"
  ZTV_BENCH_KEY="$key" run_wrk signature "$base/v1/meeting-sdk/signature" "$LUA_SCRIPT"

  require_all_2xx
  print_report
}

main "$@"
