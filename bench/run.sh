#!/usr/bin/env bash
# Load benchmark of ztv: `bash bench/run.sh` from anywhere in the repository.
#
# Builds the release binary, starts the built-in Zoom emulator (`ztv emulator`) and the
# service on free ports, the service against a throw-away SQLite database (JSON logs on, as in
# production) and the emulator, then loads three routes with wrk:
#   a) GET  /healthz                      – the baseline: routing, middleware, logging, no work
#   b) POST /v1/meeting-sdk/signature     – API-key check, body validation, HS256 signing
#   c) GET  /v1/users/{userId}/zak        – API-key check, a warm ZAK: the warm-up fills the
#                                           S2S token cache and the ZAK reuse cache
#                                           (zoom.user_token_cache_seconds), so the measured
#                                           run should barely reach the emulator
# and prints requests/s, p50/p99 latency and the server's peak RSS next to the targets, then
# the upstream calls the emulator counted (its GET /_emulator/stats): for the whole
# benchmark, and for the ZAK route the requests served against the upstream ZAK calls.
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
# The emulator's defaults (`ztv emulator --help`): one account with one user.
readonly EMU_ACCOUNT_ID="emuAccount"
readonly EMU_CLIENT_ID="emuClient"
readonly EMU_CLIENT_SECRET="emu-client-secret"
readonly ZAK_USER="user@example.com"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly LUA_SCRIPT="$REPO_ROOT/bench/request.lua"
readonly ZTV="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/ztv"

# Set by the steps below; read by cleanup.
WORK_DIR=""
SERVER_PID=""
SERVER_LOG=""
EMULATOR_PID=""
EMULATOR_LOG=""
EMULATOR_URL=""

log() { printf '==> %s\n' "$*" >&2; }

die() {
  printf 'bench: error: %s\n' "$*" >&2
  # The server's own words are usually the quickest way to the cause.
  if [[ -n $SERVER_LOG && -s $SERVER_LOG ]]; then
    printf -- '--- last lines of the server log (%s) ---\n' "$SERVER_LOG" >&2
    tail -n 20 "$SERVER_LOG" >&2
  fi
  if [[ -n $EMULATOR_LOG && -s $EMULATOR_LOG ]]; then
    printf -- '--- last lines of the emulator log (%s) ---\n' "$EMULATOR_LOG" >&2
    tail -n 5 "$EMULATOR_LOG" >&2
  fi
  exit 1
}

# stop_process PID: TERM, then wait for it (both ztv processes shut down on SIGTERM).
stop_process() {
  if [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; then
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}

# Stops the server and the emulator and removes the temp dir whatever way the script ends.
cleanup() {
  stop_process "$SERVER_PID"
  stop_process "$EMULATOR_PID"
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

[zoom]
oauth_url = "$EMULATOR_URL"
api_url = "$EMULATOR_URL/v2"

[accounts.bench.s2s]
account_id = "$EMU_ACCOUNT_ID"
client_id = "$EMU_CLIENT_ID"
client_secret = "$EMU_CLIENT_SECRET"

[accounts.bench.meeting_sdk]
client_id = "benchSdkKey"
client_secret = "bench-secret-0123456789abcdef"
EOF
}

# Prints a new API key allowed to ask for Meeting SDK signatures and ZAKs.
create_api_key() {
  local config="$1" output limit=()
  # Where the build has per-caller rate limits, the default would throttle the one bench key
  # long before the service: give it a limit far above what wrk reaches.
  if "$ZTV" clients create --help 2>/dev/null | grep -q -- '--rate-limit'; then
    limit=(--rate-limit 100000/100000)
  fi
  output="$("$ZTV" --config "$config" clients create --name bench "${limit[@]}" \
    --scope meeting-sdk:signature --scope meeting-sdk:host --scope zak:read --json)" ||
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
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null --max-time 1 "$EMULATOR_URL/_emulator/stats" 2>/dev/null; then
      return
    fi
    kill -0 "$EMULATOR_PID" 2>/dev/null || die "the emulator exited during start-up"
    sleep 0.1
  done
  die "the emulator's GET /_emulator/stats did not answer 200 within 10 s"
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

# The same for the ZAK route; this first request goes through to the emulator.
check_zak_route() {
  local base="$1" key="$2" status body="$WORK_DIR/zak.json"
  status="$(curl -sS -o "$body" -w '%{http_code}' --max-time 10 \
    -H "Authorization: Bearer $key" "$base/v1/users/$ZAK_USER/zak")" ||
    die "GET /v1/users/$ZAK_USER/zak: curl failed"
  if [[ $status != 200 ]]; then
    die "GET /v1/users/$ZAK_USER/zak answered $status: $(cat "$body")"
  fi
  python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["zak"]' "$body" 2>/dev/null ||
    die "GET /v1/users/$ZAK_USER/zak answered 200 without a zak: $(cat "$body")"
}

# run_wrk NAME URL [LUA_SCRIPT]: a warm-up into $WORK_DIR/NAME.warmup.txt, then the measured
# run into $WORK_DIR/NAME.txt, with the emulator's counts just before and after the measured
# run in NAME.before.json and NAME.after.json.
run_wrk() {
  local name="$1" url="$2" script="${3:-}" out="$WORK_DIR/$1.txt"
  local args=(-t "$THREADS" -c "$CONNECTIONS" --latency)
  if [[ -n $script ]]; then
    args+=(-s "$script")
  fi
  log "$name: warm-up $WARMUP, then $DURATION"
  wrk "${args[@]}" -d "$WARMUP" "$url" >"$WORK_DIR/$name.warmup.txt" 2>&1 ||
    die "$name: wrk warm-up failed: $(cat "$WORK_DIR/$name.warmup.txt")"
  emulator_stats "$WORK_DIR/$name.before.json"
  if ! wrk "${args[@]}" -d "$DURATION" "$url" >"$out" 2>&1; then
    cat "$out" >&2
    die "$name: wrk failed"
  fi
  emulator_stats "$WORK_DIR/$name.after.json"
  kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during the $name run"
  if [[ $VERBOSE == 1 ]]; then
    cat "$out" >&2
  fi
}

# --- parsing wrk's report -------------------------------------------------------------

requests_per_second() {
  awk '/^Requests\/sec:/ { print $2 }' "$1"
}

# "  123456 requests in 10.00s, 12.34MB read" → 123456.
request_count() {
  awk '/ requests in / { print $1 }' "$1"
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
  printf '%-34s %10.1f %8s %8s %8s %8s\n' "$label" "$(requests_per_second "$file")" \
    "$(percentile_ms "$file" 50)" "$(percentile_ms "$file" 99)" \
    "$(non_2xx_count "$file")" "$(socket_error_count "$file")"
}

# ratio A B → A / B with two decimals.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

# ZAK requests answered 2xx by a wrk report (requests minus non-2xx).
served_2xx() {
  echo $(($(request_count "$1") - $(non_2xx_count "$1")))
}

print_upstream_report() {
  local total="$WORK_DIR/final.json" before="$WORK_DIR/zak.before.json"
  local after="$WORK_DIR/zak.after.json"
  local warm_served measured_served all_served zak_calls measured_zak measured_token
  warm_served="$(served_2xx "$WORK_DIR/zak.warmup.txt")"
  measured_served="$(served_2xx "$WORK_DIR/zak.txt")"
  # + 1: the check before the load.
  all_served=$((1 + warm_served + measured_served))
  zak_calls="$(stat_count "$total" zak)"
  measured_zak=$(($(stat_count "$after" zak) - $(stat_count "$before" zak)))
  measured_token=$(($(stat_count "$after" token) - $(stat_count "$before" token)))

  echo
  echo "upstream calls counted by the emulator over the whole benchmark (checks, warm-ups, runs):"
  printf '  %-20s %8s   (by account: %s)\n' "S2S token requests" "$(stat_count "$total" token)" \
    "$(stat_accounts "$total")"
  printf '  %-20s %8s\n' "ZAK calls" "$zak_calls"
  printf '  %-20s %8s\n' "OBF calls" "$(stat_count "$total" obf)"
  echo
  echo "ZAK route, GET /v1/users/$ZAK_USER/zak: requests served (2xx) vs upstream calls"
  printf '  %-20s %10s served %6s ZAK calls   (1 check + %s warm-up + %s measured)\n' \
    "whole benchmark" "$all_served" "$zak_calls" "$warm_served" "$measured_served"
  printf '  %-20s %10s served %6s ZAK calls %6s S2S token requests\n' \
    "measured run alone" "$measured_served" "$measured_zak" "$measured_token"
}

print_report() {
  local health="$WORK_DIR/healthz.txt" sign="$WORK_DIR/signature.txt" zak="$WORK_DIR/zak.txt"
  local health_rps sign_rps sign_ratio zak_ratio sign_p99 rss log_lines
  health_rps="$(requests_per_second "$health")"
  sign_rps="$(requests_per_second "$sign")"
  sign_ratio="$(ratio "$sign_rps" "$health_rps")"
  zak_ratio="$(ratio "$(requests_per_second "$zak")" "$health_rps")"
  sign_p99="$(percentile_ms "$sign" 99)"
  rss="$(peak_rss_mib)"
  log_lines="$(wc -l <"$SERVER_LOG")"

  echo
  echo "ztv benchmark: wrk, $THREADS threads, $CONNECTIONS connections, $DURATION per route (after a $WARMUP warm-up)"
  echo "machine: $(nproc) CPUs, $(cpu_model)"
  echo "commit:  $(git_commit)"
  echo "server:  $("$ZTV" --version), release build, JSON logs at info ($log_lines lines written)"
  echo
  printf '%-34s %10s %8s %8s %8s %8s\n' "route" "req/s" "p50 ms" "p99 ms" "non-2xx" "sock err"
  route_row "GET  /healthz" "$health"
  route_row "POST /v1/meeting-sdk/signature" "$sign"
  route_row "GET  /v1/users/{userId}/zak (warm)" "$zak"
  echo
  echo "peak RSS of the server (VmHWM): $rss MiB"
  echo
  printf '%-34s %12s %12s   %s\n' "target" "measured" "target" "result"
  printf '%-34s %12s %12s   %s\n' "signature/healthz req/s ratio" "$sign_ratio" ">= $TARGET_RATIO" \
    "$(verdict "$sign_ratio" ">=" "$TARGET_RATIO")"
  printf '%-34s %12s %12s   %s\n' "signature p99 latency" "$sign_p99 ms" "< $TARGET_P99_MS ms" \
    "$(verdict "$sign_p99" "<" "$TARGET_P99_MS")"
  printf '%-34s %12s %12s   %s\n' "peak RSS" "$rss MiB" "< $TARGET_RSS_MIB MiB" \
    "$(verdict "$rss" "<" "$TARGET_RSS_MIB")"
  printf '%-34s %12s %12s   %s\n' "zak/healthz req/s ratio" "$zak_ratio" "none" "(for information)"

  print_upstream_report
}

# Non-2xx answers mean we measured error paths, not the service: that run is invalid.
require_all_2xx() {
  local name file count
  for name in healthz signature zak; do
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
  start_emulator
  local config="$WORK_DIR/ztv.toml" port base key
  port="$(free_port)"
  base="http://127.0.0.1:$port"
  write_config "$config" "$port"
  key="$(create_api_key "$config")"

  log "starting ztv on $base"
  start_server "$config"
  wait_until_healthy "$base"
  check_signature_route "$base" "$key"
  check_zak_route "$base" "$key"

  run_wrk healthz "$base/healthz"
  ZTV_BENCH_KEY="$key" ZTV_BENCH_METHOD=POST ZTV_BENCH_BODY="$SIGNATURE_BODY" \
    run_wrk signature "$base/v1/meeting-sdk/signature" "$LUA_SCRIPT"
  ZTV_BENCH_KEY="$key" ZTV_BENCH_METHOD=GET ZTV_BENCH_BODY="" \
    run_wrk zak "$base/v1/users/$ZAK_USER/zak" "$LUA_SCRIPT"
  kill -0 "$EMULATOR_PID" 2>/dev/null || die "the emulator died during the runs"
  emulator_stats "$WORK_DIR/final.json"

  require_all_2xx
  print_report
}

main "$@"
