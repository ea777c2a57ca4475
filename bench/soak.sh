#!/usr/bin/env bash
# Soak run of ztv: `bash bench/soak.sh` from anywhere in the repository.
#
# Builds the release binary and the load generator (bench/soak.rs), starts the built-in
# Zoom emulator (`ztv emulator`) with two accounts, five users and short-lived access tokens
# (so that ztv refreshes its S2S tokens throughout the run), and the service against it on free
# ports: a throw-away SQLite database, the in-process cache, JSON logs at info as in
# production, two accounts (`alpha`: S2S, Meeting SDK and Video SDK; `beta`: S2S and Meeting
# SDK), and two API keys made with `ztv clients create` (one with every scope the mix needs and
# a rate limit out of the way, one with `video-sdk:token` only).
#
# Then the load generator (`cargo run --release --example soak -- --help`) sends a fixed count of requests in a fixed mix
# (per 100: 40 Meeting SDK signatures, 15 Video SDK tokens, 20 warm ZAKs, 10 S2S tokens,
# 5 joins with a ZAK, 10 deliberately bad requests of eight kinds) and reports the answers by
# route and status, the errors (expected: bad requests refused with their status; unexpected:
# anything else), the S2S token requests the emulator counted per account against the fewest
# possible and against ztv's refresh policy, the ZAK calls against the requests, and the
# server's RSS at the start, after a tenth of the requests, at the end and at its peak. This
# script adds the warnings and errors of the server's log.
#
# It exits non-zero when the run is broken (build, start-up, a process dying) or had an
# unexpected error; never for a figure (throughput, latency, memory, upstream counts).
#
# Environment: SOAK_REQUESTS (default 200000: 5 to 15 s on 2 cores, depending on the machine;
# 1000000 for a longer soak), SOAK_CONCURRENCY (32), SOAK_TOKEN_LIFETIME (`expires_in` of the
# emulator's tokens, seconds; 4, so that even a 5 s default run sees a refresh every 2 s),
# SOAK_REFRESH_MARGIN (zoom.refresh_margin_seconds; 300, the shipped default, which ztv caps
# at half a token's life), SOAK_ZAK_REUSE (zoom.user_token_cache_seconds; 2, so ZAKs are
# fetched again, with the S2S token of the moment, throughout), SOAK_TIMEOUT (seconds one
# request may take; 10).
set -euo pipefail

readonly REQUESTS="${SOAK_REQUESTS:-200000}"
readonly CONCURRENCY="${SOAK_CONCURRENCY:-32}"
readonly TOKEN_LIFETIME="${SOAK_TOKEN_LIFETIME:-4}"
readonly REFRESH_MARGIN="${SOAK_REFRESH_MARGIN:-300}"
readonly ZAK_REUSE="${SOAK_ZAK_REUSE:-2}"
readonly TIMEOUT="${SOAK_TIMEOUT:-10}"

# The emulator's two accounts (S2S apps) and users; ztv's config names them alpha and beta.
readonly ALPHA_ACCOUNT_ID="soakAccountAlpha"
readonly ALPHA_CLIENT_ID="soakClientAlpha"
readonly ALPHA_CLIENT_SECRET="soak-alpha-s2s-secret"
readonly BETA_ACCOUNT_ID="soakAccountBeta"
readonly BETA_CLIENT_ID="soakClientBeta"
readonly BETA_CLIENT_SECRET="soak-beta-s2s-secret"
# NAME:USER_ID:EMAIL, NAME being ztv's account name.
readonly USERS=(
  "alpha:alphaUser1:ada@alpha.example.com"
  "alpha:alphaUser2:grace@alpha.example.com"
  "alpha:alphaUser3:edsger@alpha.example.com"
  "beta:betaUser1:barbara@beta.example.com"
  "beta:betaUser2:ken@beta.example.com"
)
# The Meeting SDK and Video SDK apps (ztv signs with these; the load generator verifies).
readonly ALPHA_SDK_KEY="soakAlphaSdkKey"
readonly ALPHA_SDK_SECRET="soak-alpha-sdk-secret-0123456789"
readonly BETA_SDK_KEY="soakBetaSdkKey"
readonly BETA_SDK_SECRET="soak-beta-sdk-secret-0123456789a"
readonly VIDEO_KEY="soakAlphaVideoKey"
readonly VIDEO_SECRET="soak-alpha-video-secret-01234567"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly SCRIPT_NAME="soak"
# shellcheck source=bench/lib.sh
source "$REPO_ROOT/bench/lib.sh"
readonly ZTV="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/ztv"
readonly SOAK="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/examples/soak"

# Set by the steps below; read by cleanup.
WORK_DIR=""
SERVER_PID=""
SERVER_LOG=""
EMULATOR_PID=""
EMULATOR_LOG=""
EMULATOR_URL=""

cleanup() {
  stop_process "$SERVER_PID"
  stop_process "$EMULATOR_PID"
  if [[ -n $WORK_DIR ]]; then
    rm -rf "$WORK_DIR"
  fi
}

require_whole_number() {
  [[ $2 =~ ^[0-9]+$ && $2 -ge $3 ]] || die "$1 must be a whole number of at least $3, not '$2'"
}

build() {
  log "cargo build --release (ztv and bench/soak.rs)"
  (cd "$REPO_ROOT" && cargo build --release --bin ztv --example soak) || die "release build failed"
  [[ -x $ZTV ]] || die "no binary at $ZTV after the build"
  [[ -x $SOAK ]] || die "no load generator at $SOAK after the build"
}

# Zoom account ID of one of ztv's account names.
zoom_account_id() {
  case $1 in
    alpha) printf '%s' "$ALPHA_ACCOUNT_ID" ;;
    beta) printf '%s' "$BETA_ACCOUNT_ID" ;;
    *) die "unknown account name $1" ;;
  esac
}

start_emulator() {
  local port user name id email user_args=()
  port="$(free_port)"
  EMULATOR_URL="http://127.0.0.1:$port"
  EMULATOR_LOG="$WORK_DIR/emulator.log"
  for user in "${USERS[@]}"; do
    IFS=: read -r name id email <<<"$user"
    user_args+=(--user "$(zoom_account_id "$name"):$id:$email")
  done
  log "starting the Zoom emulator on $EMULATOR_URL (tokens live $TOKEN_LIFETIME s)"
  "$ZTV" emulator --bind "127.0.0.1:$port" --account-id "$ALPHA_ACCOUNT_ID" \
    --client-id "$ALPHA_CLIENT_ID" --client-secret "$ALPHA_CLIENT_SECRET" \
    --account "$BETA_ACCOUNT_ID:$BETA_CLIENT_ID:$BETA_CLIENT_SECRET" \
    "${user_args[@]}" --token-lifetime "$TOKEN_LIFETIME" >"$EMULATOR_LOG" 2>&1 &
  EMULATOR_PID=$!
  wait_for_url "$EMULATOR_URL/_emulator/stats" "$EMULATOR_PID" "the emulator"
}

# write_config CONFIG PORT
write_config() {
  cat >"$1" <<EOF
log_format = "json"

[server]
bind = "127.0.0.1:$2"

[database]
url = "sqlite://$WORK_DIR/ztv.db"

[zoom]
oauth_url = "$EMULATOR_URL"
api_url = "$EMULATOR_URL/v2"
refresh_margin_seconds = $REFRESH_MARGIN
user_token_cache_seconds = $ZAK_REUSE

[accounts.alpha.s2s]
account_id = "$ALPHA_ACCOUNT_ID"
client_id = "$ALPHA_CLIENT_ID"
client_secret = "$ALPHA_CLIENT_SECRET"

[accounts.alpha.meeting_sdk]
client_id = "$ALPHA_SDK_KEY"
client_secret = "$ALPHA_SDK_SECRET"

[accounts.alpha.video_sdk]
key = "$VIDEO_KEY"
secret = "$VIDEO_SECRET"

[accounts.beta.s2s]
account_id = "$BETA_ACCOUNT_ID"
client_id = "$BETA_CLIENT_ID"
client_secret = "$BETA_CLIENT_SECRET"

[accounts.beta.meeting_sdk]
client_id = "$BETA_SDK_KEY"
client_secret = "$BETA_SDK_SECRET"
EOF
}

# The server log's warnings and errors: how many, and each distinct message with its count.
log_summary() {
  python3 - "$SERVER_LOG" <<'EOF'
import collections, json, sys
lines = 0
by_level = collections.Counter()
messages = collections.Counter()
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    lines += 1
    try:
        event = json.loads(line)
    except ValueError:
        by_level["unparsed"] += 1
        messages[("unparsed", line.strip()[:120])] += 1
        continue
    level = str(event.get("level", "?")).upper()
    by_level[level] += 1
    if level in ("WARN", "ERROR"):
        fields = event.get("fields", {})
        messages[(level, str(fields.get("message", event.get("message", "?"))))] += 1
print(f"server log: {lines} lines; {by_level['WARN']} warnings, {by_level['ERROR']} errors"
      + (f", {by_level['unparsed']} lines not JSON" if by_level["unparsed"] else ""))
for (level, message), n in messages.most_common(10):
    print(f"  {n:>7} {level:<5} {message}")
EOF
}

main() {
  trap cleanup EXIT
  # Turn Ctrl-C and kill into a normal exit so that cleanup stops the processes.
  trap 'exit 130' INT
  trap 'exit 143' TERM

  require_whole_number SOAK_REQUESTS "$REQUESTS" 1
  require_whole_number SOAK_CONCURRENCY "$CONCURRENCY" 1
  require_whole_number SOAK_TOKEN_LIFETIME "$TOKEN_LIFETIME" 2
  require_whole_number SOAK_REFRESH_MARGIN "$REFRESH_MARGIN" 0
  require_whole_number SOAK_ZAK_REUSE "$ZAK_REUSE" 0
  require_whole_number SOAK_TIMEOUT "$TIMEOUT" 1
  command -v curl >/dev/null || die "curl is required"
  command -v python3 >/dev/null || die "python3 is required"
  [[ -r /proc/self/status ]] || die "/proc is required (the server's RSS is read from it)"

  cd "$REPO_ROOT"
  clear_ztv_environment
  build

  WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ztv-soak.XXXXXX")"
  start_emulator

  local config="$WORK_DIR/ztv.toml" port base key narrow_key
  port="$(free_port)"
  base="http://127.0.0.1:$port"
  write_config "$config" "$port"
  key="$(create_api_key "$ZTV" "$config" soak meeting-sdk:signature meeting-sdk:host video-sdk:token \
    video-sdk:host zak:read s2s:token)"
  narrow_key="$(create_api_key "$ZTV" "$config" soak-video-only video-sdk:token)"

  log "starting ztv on $base"
  SERVER_LOG="$WORK_DIR/server.log"
  "$ZTV" --config "$config" serve >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  wait_for_url "$base/healthz" "$SERVER_PID" "the server"

  local user_args=() user status=0
  for user in "${USERS[@]}"; do
    user_args+=(--user "$user")
  done
  log "soak: $REQUESTS requests, $CONCURRENCY in flight"
  # The binary `cargo run --release --example soak` would run, started directly: cargo must not
  # rebuild anything while the server is up.
  "$SOAK" \
    --server "$base" --server-pid "$SERVER_PID" --emulator "$EMULATOR_URL" \
    --key "$key" --narrow-key "$narrow_key" \
    --account "alpha:$ALPHA_ACCOUNT_ID:$ALPHA_SDK_KEY:$ALPHA_SDK_SECRET" \
    --account "beta:$BETA_ACCOUNT_ID:$BETA_SDK_KEY:$BETA_SDK_SECRET" \
    --video "alpha:$VIDEO_KEY:$VIDEO_SECRET" "${user_args[@]}" \
    --requests "$REQUESTS" --concurrency "$CONCURRENCY" \
    --token-lifetime "$TOKEN_LIFETIME" --refresh-margin "$REFRESH_MARGIN" \
    --zak-reuse "$ZAK_REUSE" --timeout "$TIMEOUT" || status=$?

  kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during the soak"
  kill -0 "$EMULATOR_PID" 2>/dev/null || die "the emulator died during the soak"
  echo "machine: $(nproc) CPUs; server: $("$ZTV" --version), release build, SQLite, in-process cache"
  log_summary
  stop_process "$SERVER_PID"
  SERVER_PID=""
  case $status in
    0) ;;
    1) die "the soak saw unexpected errors (see the report above)" ;;
    *) die "the load generator could not run (exit $status)" ;;
  esac
}

main "$@"
