# shellcheck shell=bash
# Helpers shared by bench/run.sh, bench/soak.sh, bench/callgrind.sh, bench/perf.sh and
# bench/compare.sh; sourced, not run.
# The sourcing script sets SCRIPT_NAME (for messages) and may set SERVER_LOG and EMULATOR_LOG,
# whose last lines `die` shows.

log() { printf '==> %s\n' "$*" >&2; }

die() {
  printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
  # The server's own words are usually the quickest way to the cause.
  if [[ -n ${SERVER_LOG:-} && -s $SERVER_LOG ]]; then
    printf -- '--- last lines of the server log (%s) ---\n' "$SERVER_LOG" >&2
    tail -n 20 "$SERVER_LOG" >&2
  fi
  if [[ -n ${EMULATOR_LOG:-} && -s $EMULATOR_LOG ]]; then
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

# stop_measurement: the EXIT trap of callgrind.sh and perf.sh, which both start the emulator,
# the floor and ztv (EMULATOR_PID, FLOOR_PID, SERVER_PID) with their files in WORK_DIR: stops
# the three and deletes WORK_DIR unless KEEP is 1.
stop_measurement() {
  stop_process "$SERVER_PID"
  stop_process "$FLOOR_PID"
  stop_process "$EMULATOR_PID"
  if [[ -n $WORK_DIR && $KEEP != 1 ]]; then
    rm -rf "$WORK_DIR"
  fi
}

# cpu_ticks PID → the process's user + system time so far (every thread), in clock ticks.
cpu_ticks() {
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# us_per_request TICKS REQUESTS → the microseconds of CPU TICKS clock ticks make per request.
us_per_request() {
  awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }'
}

# timed_wrk OUT ARG… → runs `wrk ARG…` with its output in OUT and prints the CPU seconds it
# used (user + system, from bash's `time`); fails when wrk does.
timed_wrk() {
  local out="$1" times
  shift
  times="$( { TIMEFORMAT='%U %S'; time wrk "$@" >"$out" 2>&1; } 2>&1)" || return 1
  awk -v t="$times" 'BEGIN { split(t, s, " "); printf "%.3f", s[1] + s[2] }'
}

# ZTV_* variables override the config file; a developer's shell may have some set (say a
# real database URL), and a benchmark must not pick them up.
clear_ztv_environment() {
  local name
  for name in $(compgen -e); do
    if [[ $name == ZTV_* ]]; then
      unset "$name"
    fi
  done
  # Production's level: a RUST_LOG=debug left in the shell would change what is measured.
  export RUST_LOG=info
  # The plain floor never spins (only bench/compare.sh's second floor is given this).
  unset FLOOR_BUSY_US
}

# The benchmarked routes' requests: the signature's body, and the emulator's default user
# (its default account is EMU_*, below) whose ZAK is asked for.
readonly SIGNATURE_BODY='{"meetingNumber":"123456789","role":0}'
readonly ZAK_USER="user@example.com"

# route_request ROUTE → "METHOD PATH" of a benchmarked route: healthz, signature or zak.
route_request() {
  case $1 in
    healthz) echo "GET /healthz" ;;
    signature) echo "POST /v1/meeting-sdk/signature" ;;
    zak) echo "GET /v1/users/$ZAK_USER/zak" ;;
  esac
}

# route_body ROUTE → the JSON body of a benchmarked route's request (none but the signature's).
route_body() {
  if [[ $1 == signature ]]; then
    echo "$SIGNATURE_BODY"
  fi
}

# Asks the kernel for a port nobody uses (bind to port 0), so parallel runs do not clash.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# install_if_missing COMMAND PACKAGE: installs Debian's PACKAGE when COMMAND is not on PATH.
install_if_missing() {
  if command -v "$1" >/dev/null; then
    return
  fi
  log "installing $2"
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    sudo="sudo"
  fi
  # sudo drops the environment, hence `env` for the non-interactive front end.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  command -v "$1" >/dev/null || die "$1 is still missing after apt-get install $2"
}

# wait_for_url URL PID WHAT [SECONDS]: polls URL until it answers 2xx (default 10 s); gives up
# early when PID (WHAT, for the message) has already exited.
wait_for_url() {
  local i tries=$((${4:-10} * 10))
  for ((i = 0; i < tries; i++)); do
    if curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; then
      return
    fi
    kill -0 "$2" 2>/dev/null || die "$3 exited during start-up"
    sleep 0.1
  done
  die "$3 did not answer $1 within ${4:-10} s"
}

# The emulator's defaults (`ztv emulator --help`): what a bench server's `bench` account
# talks to.
readonly EMU_ACCOUNT_ID="emuAccount"
readonly EMU_CLIENT_ID="emuClient"
readonly EMU_CLIENT_SECRET="emu-client-secret"

# write_bench_config CONFIG PORT EMULATOR_URL DATABASE_URL [REDIS_URL ENCRYPTION_KEY KEY_PREFIX]:
# a server with JSON logs and one account, `bench`: the emulator's default S2S app and a
# Meeting SDK app. With the last three, the shared cache in Redis.
write_bench_config() {
  local config="$1" port="$2" emulator_url="$3" database_url="$4" cache=""
  if [[ $# -gt 4 ]]; then
    cache="
[cache]
redis_url = \"$5\"
encryption_key = \"$6\"
key_prefix = \"$7\"
"
  fi
  cat >"$config" <<EOF
log_format = "json"

[server]
bind = "127.0.0.1:$port"

[database]
url = "$database_url"
$cache

[zoom]
oauth_url = "$emulator_url"
api_url = "$emulator_url/v2"

[accounts.bench.s2s]
account_id = "$EMU_ACCOUNT_ID"
client_id = "$EMU_CLIENT_ID"
client_secret = "$EMU_CLIENT_SECRET"

[accounts.bench.meeting_sdk]
client_id = "benchSdkKey"
client_secret = "bench-secret-0123456789abcdef"
EOF
}

# create_api_key ZTV CONFIG NAME SCOPE…: prints a new key made with the binary ZTV. Where the
# build has per-caller rate limits, the key's own is far above what one load generator
# reaches, so a run measures the service, not the limiter.
create_api_key() {
  local ztv="$1" config="$2" name="$3" output scope args=()
  shift 3
  if "$ztv" clients create --help 2>/dev/null | grep -q -- '--rate-limit'; then
    args+=(--rate-limit 100000/100000)
  fi
  for scope in "$@"; do
    args+=(--scope "$scope")
  done
  output="$("$ztv" --config "$config" clients create --name "$name" "${args[@]}" --json)" ||
    die "ztv clients create failed"
  printf '%s' "$output" | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])' ||
    die "no key in the output of ztv clients create"
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
