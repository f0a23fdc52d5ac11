#!/usr/bin/env bash
# The project's test command: makes sure MariaDB, Redis and RabbitMQ are up on this machine
# (installing and starting them if needed), runs every test of the workspace against them, then
# fuzzes the admin API of a real `scrm up` against its OpenAPI description
# (scripts/schemathesis.sh) and drives the sidebar page in a headless Chromium against `scrm up`
# and the fake WeChat (scripts/browser.sh). Extra arguments go to `cargo test`, e.g.
# `./scripts/test.sh -p rules`. SCRM_SCHEMATHESIS=0 skips the fuzzing step, SCRM_BROWSER=0 the
# browser step.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

bash deploy/ensure-services.sh

export SCRM_TEST_MYSQL_URL=${SCRM_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306}
export SCRM_TEST_REDIS_URL=${SCRM_TEST_REDIS_URL:-redis://127.0.0.1:6379}
export SCRM_TEST_AMQP_URL=${SCRM_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}

# Not --all-targets: that would also run the benchmarks, as tests.
cargo test --workspace --locked "$@"

# `cargo test --workspace` has built target/debug/scrm for the end-to-end tests, and
# target/debug/fake-wechat for the fake's own tests.
if [[ ${SCRM_SCHEMATHESIS:-1} != 0 ]]; then
  if [[ $# -eq 0 ]]; then
    SCRM_BIN_FRESH=1 bash scripts/schemathesis.sh
  else
    bash scripts/schemathesis.sh
  fi
fi

# The sidebar page in a real browser, against the same binaries.
if [[ ${SCRM_BROWSER:-1} != 0 ]]; then
  if [[ $# -eq 0 ]]; then
    SCRM_BIN_FRESH=1 bash scripts/browser.sh
  else
    bash scripts/browser.sh
  fi
fi
