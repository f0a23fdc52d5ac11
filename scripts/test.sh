#!/usr/bin/env bash
# The project's test command: makes sure MariaDB, Redis and RabbitMQ are up on this machine
# (installing and starting them if needed), runs every test of the workspace against them and,
# beside them, fuzzes the admin API of a real `scrm up` against its OpenAPI description
# (scripts/schemathesis.sh), then drives the sidebar page in a headless Chromium against
# `scrm up` and the fake WeChat (scripts/browser.sh). Extra arguments go to `cargo test`, e.g.
# `./scripts/test.sh -p rules` (the steps then run one after the other). SCRM_SCHEMATHESIS=0
# skips the fuzzing step, SCRM_BROWSER=0 the browser step.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

bash deploy/ensure-services.sh

# A CI machine builds from nothing once: incremental compilation only costs there (its caches are
# written and never read; ~50 s of a cold build on two cores). Locally it stays on.
if [[ ${CI:-} == true && -z ${CARGO_INCREMENTAL:-} ]]; then
  export CARGO_INCREMENTAL=0
fi

export SCRM_TEST_MYSQL_URL=${SCRM_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306}
export SCRM_TEST_REDIS_URL=${SCRM_TEST_REDIS_URL:-redis://127.0.0.1:6379}
export SCRM_TEST_AMQP_URL=${SCRM_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}

# Not --all-targets: that would also run the benchmarks, as tests.
if [[ $# -gt 0 ]]; then
  # A part of the suite, one step after the other.
  cargo test --workspace --locked "$@"
  [[ ${SCRM_SCHEMATHESIS:-1} == 0 ]] || bash scripts/schemathesis.sh
  [[ ${SCRM_BROWSER:-1} == 0 ]] || bash scripts/browser.sh
  exit 0
fi

# The whole suite. The fuzzing is bound by its time budget and uses about one core, so it runs
# beside the Rust tests instead of after them; their tools (a virtualenv, apt packages) install
# while the Rust code compiles. Each step's output is printed whole once it ends.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/scrm-test.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
# Runs "$@" in the background with its output in $WORK/<name>.log; `finish <name>` waits for it.
start() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  echo $! >"$WORK/$name.pid"
}
finish() {
  local name=$1 status=0
  wait "$(cat "$WORK/$name.pid")" || status=$?
  cat "$WORK/$name.log"
  return $status
}
prepare() {
  [[ ${SCRM_SCHEMATHESIS:-1} == 0 ]] || bash scripts/schemathesis.sh --prepare
  [[ ${SCRM_BROWSER:-1} == 0 ]] || bash scripts/browser.sh --prepare
}

start prepare prepare
# Builds target/debug/scrm for the end-to-end tests and target/debug/fake-wechat for the fake's
# own tests, with the test binaries.
cargo test --workspace --locked --no-run
finish prepare
if [[ ${SCRM_SCHEMATHESIS:-1} != 0 ]]; then
  SCRM_BIN_FRESH=1 start schemathesis bash scripts/schemathesis.sh
fi
status=0
cargo test --workspace --locked || status=$?
if [[ ${SCRM_SCHEMATHESIS:-1} != 0 ]]; then
  finish schemathesis || status=$?
fi
[[ $status -eq 0 ]] || exit "$status"

# The sidebar page in a real browser, against the same binaries.
if [[ ${SCRM_BROWSER:-1} != 0 ]]; then
  SCRM_BIN_FRESH=1 bash scripts/browser.sh
fi
