#!/usr/bin/env bash
# The sidebar page in a real headless browser: starts the fake WeChat (the `fake-wechat` binary)
# and a real `scrm up` pointed at it (a temporary data dir, free ports), then runs
# scripts/browser_test.py, which registers the fake's WeCom apps to tenant `demo` with the owner
# token `scrm up` writes, has the fake send a rep's add_external_contact callback, and drives the
# page in Chromium through Selenium at the WeCom sidebar's width: WeCom sign-in, the card, adding
# a tag and a note, a stage move, a refused customer, the inbox, and the JS-SDK path a page inside
# WeCom takes (with a stand-in `wx`). Any failed check fails this script; it takes a few seconds
# once the binaries are built.
#
# Needs Debian's chromium and chromium-driver (installed here when missing). Selenium is installed into
# a virtualenv under target/ (the machine's Python is left as it is) and kept there between runs;
# a change of the pinned version reinstalls it.
#
# Usage: scripts/browser.sh [--prepare]   (--prepare: install the browser and selenium, then stop)
# Environment:
#   SCRM_BIN_FRESH=1        use the scrm and fake-wechat binaries as they are (the caller has just
#                           built them)
#   SCRM_BROWSER_WIDTH      the browser window's width in px (default 400, WeCom's sidebar)
#   SCRM_BROWSER_SCREENSHOTS  a directory to keep screenshots of the page in (default: none)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

readonly SELENIUM=4.50.0
readonly VENV=target/browser-venv
BIN=${CARGO_TARGET_DIR:-target}/debug/scrm
FAKE_BIN=${CARGO_TARGET_DIR:-target}/debug/fake-wechat
START=$(date +%s)

log() { printf 'browser.sh: %s\n' "$*" >&2; }

# --- the browser and its driver ----------------------------------------------------------------
# Installed from Debian's packages when missing, like the servers of deploy/ensure-services.sh.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  log "installing chromium and chromium-driver"
  as_root=()
  [[ $EUID -eq 0 ]] || as_root=(sudo -n)
  "${as_root[@]}" apt-get update -qq >/dev/null
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq chromium chromium-driver >/dev/null
fi
for tool in chromium chromedriver; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    log "$tool is missing: apt-get install -y chromium chromium-driver (or SCRM_BROWSER=0 to skip)"
    exit 1
  fi
done

# --- selenium, cached in target/ ---------------------------------------------------------------
if [[ "$("$VENV/bin/python" -c 'import selenium; print(selenium.__version__)' 2>/dev/null || true)" != "$SELENIUM" ]]; then
  log "installing selenium $SELENIUM into $VENV"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian ships venv apart from python3.
    log "python3 has no venv module: installing python3-venv"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$VENV"
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "selenium==$SELENIUM"
fi

if [[ ${1:-} == --prepare ]]; then
  exit 0
fi

# --- the scrm and fake-wechat binaries -----------------------------------------------------------
if [[ ${SCRM_BIN_FRESH:-0} != 1 || ! -x $BIN || ! -x $FAKE_BIN ]]; then
  cargo build --locked -p scrm -p fake-wechat --bin scrm --bin fake-wechat
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/scrm-browser.XXXXXX")
FAKE_PID=
UP_PID=
stop() {
  local pid=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  stop "$UP_PID"
  stop "$FAKE_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT

# Waits (30 s) for the sed expression $2 to find a URL in file $1 while process $3 runs.
wait_for_url() {
  local file=$1 expr=$2 pid=$3 what=$4 url=
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$what exited; its output:"
      tail -n 40 "$file" "${file%.out}.log" >&2 || true
      return 1
    fi
    url=$(sed -n "$expr" "$file")
    if [[ -n $url ]]; then
      printf '%s' "$url"
      return 0
    fi
    sleep 0.2
  done
  log "$what did not come up in 30 s; its output:"
  tail -n 40 "$file" "${file%.out}.log" >&2 || true
  return 1
}

# --- the fake WeChat and `scrm up` pointed at it -------------------------------------------------
"$FAKE_BIN" --port 0 --seed 7 >"$WORK/fake.out" 2>"$WORK/fake.log" &
FAKE_PID=$!
FAKE=$(wait_for_url "$WORK/fake.out" 's|^Fake WeChat is up at \(http://[^ ]*\) .*|\1|p' "$FAKE_PID" "the fake WeChat")

env -u SCRM_CONFIG -u SCRM_DATA_DIR -u SCRM_BIND \
  SCRM_GATEWAY__WECHAT_API__OA_BASE_URL="$FAKE" \
  SCRM_GATEWAY__WECHAT_API__WECOM_BASE_URL="$FAKE" \
  SCRM_GATEWAY__WECHAT_API__OPEN_BASE_URL="$FAKE" \
  "$BIN" up --data-dir "$WORK/data" --bind 127.0.0.1:0 >"$WORK/up.out" 2>"$WORK/up.log" &
UP_PID=$!
BASE=$(wait_for_url "$WORK/up.out" 's|^  admin API: \(http://[^ ]*\)/admin/v1 .*|\1|p' "$UP_PID" "scrm up")
for _ in $(seq 1 100); do
  [[ -s $WORK/data/admin.token ]] && break
  sleep 0.1
done
log "fake WeChat at $FAKE, scrm up at $BASE"

# --- the run -------------------------------------------------------------------------------------
status=0
"$VENV/bin/python" scripts/browser_test.py --gateway "$BASE" --fake "$FAKE" \
  --data-dir "$WORK/data" --width "${SCRM_BROWSER_WIDTH:-400}" \
  ${SCRM_BROWSER_SCREENSHOTS:+--screenshots "$SCRM_BROWSER_SCREENSHOTS"} || status=$?
if [[ $status -ne 0 ]]; then
  log "failed (exit $status); the errors scrm up logged, then its last lines:"
  grep '"level":"ERROR"' "$WORK/up.log" | tail -n 20 >&2 || true
  tail -n 20 "$WORK/up.log" >&2 || true
  exit "$status"
fi
log "passed in $(($(date +%s) - START)) s"
