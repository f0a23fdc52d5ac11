#!/usr/bin/env bash
# The admin API against its own OpenAPI description: starts a real `scrm up` (a temporary data
# dir, free ports), reads the owner token it writes (`<data-dir>/admin.token`) and runs
# schemathesis on every route of `/admin/v1/openapi.json` with `Authorization: Bearer <token>`,
# checking that no answer is a server error and that every answer matches the description.
# Any failure fails this script (and so the test command that calls it).
#
# schemathesis is installed from PyPI into a virtualenv under target/ (the machine's Python is
# left as it is) and kept there between runs; a change of the pinned version reinstalls it.
#
# Usage: scripts/schemathesis.sh [--prepare]   (--prepare: install schemathesis, then stop)
# Environment:
#   SCRM_SCHEMATHESIS_EXAMPLES   test cases per operation and phase (default 20)
#   SCRM_SCHEMATHESIS_MAX_TIME   time budget of the main pass, in seconds (default 110)
#   SCRM_SCHEMATHESIS_REPORT     directory for the JUnit report (default target/schemathesis-report)
#   SCRM_BIN_FRESH=1             use the debug scrm binary as it is (the caller has just built it;
#                                under $CARGO_TARGET_DIR when set, else target/)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

readonly VERSION=4.32.5
readonly VENV=target/schemathesis-venv
EXAMPLES=${SCRM_SCHEMATHESIS_EXAMPLES:-20}
MAX_TIME=${SCRM_SCHEMATHESIS_MAX_TIME:-110}
REPORT=${SCRM_SCHEMATHESIS_REPORT:-target/schemathesis-report}

log() { printf 'schemathesis.sh: %s\n' "$*" >&2; }

# --- schemathesis, cached in target/ ---------------------------------------------------------
if [[ "$("$VENV/bin/st" --version 2>/dev/null || true)" != *"$VERSION"* ]]; then
  log "installing schemathesis $VERSION into $VENV"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian ships venv apart from python3.
    log "python3 has no venv module: installing python3-venv"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$VENV"
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

if [[ ${1:-} == --prepare ]]; then
  exit 0
fi

# --- a real `scrm up` ---------------------------------------------------------------------
# The test command has just built the scrm binary with the test suites (SCRM_BIN_FRESH=1);
# building it again alone would resolve other features and rebuild crates for nothing.
BIN=${CARGO_TARGET_DIR:-target}/debug/scrm
if [[ ${SCRM_BIN_FRESH:-0} != 1 || ! -x $BIN ]]; then
  cargo build --locked -p scrm --bin scrm
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/scrm-schemathesis.XXXXXX")
UP_PID=
cleanup() {
  if [[ -n $UP_PID ]] && kill -0 "$UP_PID" 2>/dev/null; then
    kill -INT "$UP_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$UP_PID" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$UP_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

env -u SCRM_CONFIG -u SCRM_DATA_DIR -u SCRM_BIND \
  "$BIN" up --data-dir "$WORK/data" --bind 127.0.0.1:0 \
  >"$WORK/up.out" 2>"$WORK/up.log" &
UP_PID=$!

BASE=
for _ in $(seq 1 300); do
  if ! kill -0 "$UP_PID" 2>/dev/null; then
    log "scrm up exited; its log:"
    tail -n 40 "$WORK/up.log" >&2
    exit 1
  fi
  BASE=$(sed -n 's|^  admin API: \(http://[^ ]*\)/admin/v1 .*|\1|p' "$WORK/up.out")
  [[ -n $BASE && -s $WORK/data/admin.token ]] && break
  sleep 0.2
done
if [[ -z $BASE || ! -s $WORK/data/admin.token ]]; then
  log "scrm up did not come up in 60 s; its log:"
  tail -n 40 "$WORK/up.log" >&2
  exit 1
fi
TOKEN=$(tr -d '[:space:]' <"$WORK/data/admin.token")
log "scrm up at $BASE"

# --- the run ------------------------------------------------------------------------------
# Routes that can end the very credential this run signs in with are kept out of the main pass:
#   POST   /admin/v1/logout        revokes it (not run at all: it takes no input, and every later
#                                  request would be a 401; the end-to-end tests cover it);
#   DELETE /admin/v1/tokens/{id}   the owner token is listed by GET /admin/v1/tokens, and
#                                  schemathesis reuses ids it has seen in answers;
#   PATCH, DELETE /admin/v1/users/{id}
#                                  disabling or removing the owner once the run has made a second
#                                  owner through POST /admin/v1/users.
# These three run in a short pass of their own after the main one, when losing the credential
# can no longer hide anything.
rm -rf "$REPORT"
mkdir -p "$REPORT"
REPORT=$(cd "$REPORT" && pwd)
ROOT=$(pwd)
st_run() {
  # From the scratch dir: schemathesis keeps its replay cache in the working directory.
  (cd "$WORK" && "$ROOT/$VENV/bin/st" --no-color run "$BASE/admin/v1/openapi.json" \
    --url "$BASE" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$EXAMPLES" \
    --workers 1 \
    --seed 20261206 \
    --request-timeout 30 \
    --generation-database none \
    --report junit --report-dir "$REPORT" \
    "$@")
}
status=0
st_run --max-time "$MAX_TIME" \
  --exclude-path /admin/v1/logout \
  --exclude-path-regex '^/admin/v1/(tokens|users)/\{id\}$' || status=$?
# The main pass must not have lost its credential: else most of it tested only 401s.
me=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$BASE/admin/v1/me")
if [[ $me != 200 ]]; then
  log "the owner token no longer signs in after the main pass (GET /admin/v1/me: $me)"
  status=1
fi
st_run --max-time 30 \
  --include-path-regex '^/admin/v1/(tokens|users)/\{id\}$' \
  --exclude-method GET || status=$?

if grep -q '"level":"ERROR"' "$WORK/up.log"; then
  log "errors logged by scrm up during the run:"
  grep '"level":"ERROR"' "$WORK/up.log" | tail -n 20 >&2
fi
# One line in the shape test runners close with: operations passed and failed, both passes.
"$VENV/bin/python" - "$REPORT" <<'PY'
import pathlib, sys, xml.etree.ElementTree as ET
tests = failed = 0
for f in pathlib.Path(sys.argv[1]).glob("*.xml"):
    root = ET.parse(f).getroot()
    tests += int(root.get("tests", 0))
    failed += int(root.get("failures", 0)) + int(root.get("errors", 0))
print(f"schemathesis: {tests - failed} passed, {failed} failed")
PY
if [[ $status -ne 0 ]]; then
  log "schemathesis found failures (exit $status); JUnit report in $REPORT"
  exit "$status"
fi
log "no server errors, every answer matches the description"
