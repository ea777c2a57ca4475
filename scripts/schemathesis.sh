#!/usr/bin/env bash
# Schemathesis against ztv's own OpenAPI document: builds the release binary, starts `ztv dev`
# (the built-in Zoom emulator, a throw-away store and a key with every scope), and lets
# Schemathesis generate requests for every documented operation from /openapi.json.
#
# Fails (non-zero) on any server error (`not_a_server_error`) and on any answer that breaks the
# document: status codes, content types, response headers and bodies against their schemas
# (`*_conformance`), schema-invalid input accepted (`negative_data_rejection`), a required
# header left out but accepted, an undocumented method answered other than 405, a secured
# operation answering without credentials (`ignored_auth`), and the stateful checks where
# they apply. Left out: `positive_data_acceptance` (schema-valid input must be accepted). ztv
# refuses on purpose some input that JSON Schema cannot tell from valid input: `1.0` where an
# integer is due (docs/api.md: integers only), `meetingNumber` without `role`, both `userKey` and
# `userIdentity`, an API key's `POST /v1/oauth/authorize` without `userHint`, and an OAuth
# `state` that was never issued. SCHEMATHESIS_CHECKS replaces the list (e.g. `all`).
#
# Usage: bash scripts/schemathesis.sh
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 200)
#   SCHEMATHESIS_SEED          a seed, to repeat a run (default: random, printed at the end)
#   SCHEMATHESIS_VENV          where the Python venv lives (default .venv-schemathesis)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
VENV="$(realpath -m "${SCHEMATHESIS_VENV:-.venv-schemathesis}")"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-200}"
CHECKS="${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method,allow_header_conformance,ignored_auth,use_after_free,ensure_resource_availability}"

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q " $VERSION\$"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$VERSION"
fi

cargo build --release --bin ztv

LOG="$(mktemp)"
REPORT_DIR="$(mktemp -d)"
# The dev service: no rate limit in the way of the run, and webhooks configured so that their
# signature check (and its timestamp handling) is exercised too.
ZTV_RATE_LIMIT__REQUESTS_PER_SECOND=100000 \
ZTV_RATE_LIMIT__BURST=100000 \
ZTV_WEBHOOKS__SECRET_TOKEN=schemathesis-webhook-secret \
    target/release/ztv dev --bind 127.0.0.1:0 >"$LOG" 2>&1 &
DEV_PID=$!
cleanup() {
    kill "$DEV_PID" 2>/dev/null || true
    wait "$DEV_PID" 2>/dev/null || true
    rm -rf "$LOG" "$REPORT_DIR"
}
trap cleanup EXIT

# `ztv dev` prints its address and a ready key with every scope.
BASE=""
KEY=""
for _ in $(seq 1 100); do
    BASE="$(sed -n 's/^ztv dev is running at \(http:[^,]*\),.*/\1/p' "$LOG")"
    KEY="$(sed -n 's/^API key (every scope): \(ztv_[A-Za-z0-9_-]*\)$/\1/p' "$LOG")"
    [ -n "$BASE" ] && [ -n "$KEY" ] && break
    if ! kill -0 "$DEV_PID" 2>/dev/null; then
        cat "$LOG" >&2
        echo "ztv dev exited" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$BASE" ] || [ -z "$KEY" ]; then
    cat "$LOG" >&2
    echo "ztv dev printed no address or key" >&2
    exit 1
fi
echo "ztv dev at $BASE"

SEED_ARGS=()
if [ -n "${SCHEMATHESIS_SEED:-}" ]; then
    SEED_ARGS=(--seed "$SCHEMATHESIS_SEED")
fi

# Exits non-zero on any failed check. It runs inside the venv's folder, where Schemathesis
# keeps the examples it found (replayed first next time); reports go to a temp dir.
mkdir -p "$VENV/work"
cd "$VENV/work"
"$VENV/bin/st" run "$BASE/openapi.json" \
    --header "Authorization: Bearer $KEY" \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" \
    --workers 1 \
    --request-timeout 10 \
    --report-dir "$REPORT_DIR" \
    "${SEED_ARGS[@]}"
