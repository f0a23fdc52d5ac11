#!/usr/bin/env bash
# Makes sure the servers the production mode and the tests need are up on this machine:
#   MariaDB  127.0.0.1:3306  (root may log in over TCP with no password; database `test` exists)
#   Redis    127.0.0.1:6379
#   RabbitMQ 127.0.0.1:5672  (guest/guest)
#
# Idempotent: a server whose port already answers is left alone, so running this on a machine
# where everything is up is a quick no-op. A missing server is installed from the distribution's
# packages (Debian/Ubuntu) and started without systemd, so this also works in a fresh container.
#
# Usage: deploy/ensure-services.sh [--check]
#   --check   only report; never install or start anything; exit 1 if any server is down.
# Environment:
#   SCRM_SERVICES_WAIT   seconds to wait for each server to come up (default 120).
set -euo pipefail

readonly HOST=127.0.0.1
WAIT_SECS=${SCRM_SERVICES_WAIT:-120}
CHECK_ONLY=0
LOG_DIR=${TMPDIR:-/tmp}/scrm-ensure-services
APT_UPDATED=0

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --check) CHECK_ONLY=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "ensure-services: unknown argument: $1 (try --help)" >&2
      exit 2
      ;;
  esac
  shift
done

# One status line per server on stdout; progress and diagnostics on stderr.
report() { printf '%-9s %-16s %s\n' "$1" "$HOST:$2" "$3"; }
note() { printf 'ensure-services: %s\n' "$*" >&2; }
already_up() { if [[ $CHECK_ONLY -eq 1 ]]; then echo up; else echo "up (already running)"; fi; }

# Runs a command as root: directly when we are root, otherwise through non-interactive sudo.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    note "need root to run: $*"
    return 1
  fi
}

# True when something accepts TCP connections on $HOST:$1 within 2 seconds.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# Waits until $HOST:$2 answers, at most WAIT_SECS seconds. $1 names the server.
wait_port() {
  local name=$1 port=$2 deadline=$((SECONDS + WAIT_SECS))
  until port_open "$port"; do
    if ((SECONDS >= deadline)); then
      note "$name did not open $HOST:$port within ${WAIT_SECS}s"
      return 1
    fi
    sleep 1
  done
}

# Finds a program on PATH or in the sbin directories (which a non-root PATH may lack).
find_prog() {
  local p
  for p in "$(command -v "$1" 2>/dev/null || true)" "/usr/sbin/$1" "/usr/bin/$1" "/sbin/$1"; do
    if [[ -n $p && -x $p ]]; then
      printf '%s\n' "$p"
      return 0
    fi
  done
  return 1
}

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    note "apt-get not found: install $* yourself (this script knows Debian/Ubuntu only)"
    return 1
  fi
  mkdir -p "$LOG_DIR"
  if [[ $APT_UPDATED -eq 0 ]]; then
    note "apt-get update"
    as_root apt-get update -q >"$LOG_DIR/apt-update.log" 2>&1 || {
      tail -n 20 "$LOG_DIR/apt-update.log" >&2
      return 1
    }
    APT_UPDATED=1
  fi
  note "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "$@" >"$LOG_DIR/apt-install-$1.log" 2>&1 || {
    tail -n 20 "$LOG_DIR/apt-install-$1.log" >&2
    return 1
  }
}

# ---------------------------------------------------------------------------------------------
# MariaDB

mariadb_client() {
  find_prog mariadb || find_prog mysql
}

# True when root can log in over TCP with an empty password.
mariadb_tcp_login() {
  local client
  client=$(mariadb_client) || return 1
  "$client" --protocol=tcp -h"$HOST" -P3306 -uroot --connect-timeout=5 -e 'SELECT 1' >/dev/null 2>&1
}

# Lets root log in over TCP with no password (fixed through the unix socket as root), and makes
# sure database `test` exists.
mariadb_prepare() {
  local client
  if ! client=$(mariadb_client); then
    note "no mariadb client found; cannot check the root login"
    return 1
  fi
  if ! mariadb_tcp_login; then
    note "root cannot log in over TCP without a password; fixing through the unix socket"
    as_root "$client" -uroot -e "ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;" ||
      return 1
    if ! mariadb_tcp_login; then
      # With skip-name-resolve a TCP client from 127.0.0.1 is not root@localhost.
      as_root "$client" -uroot -e "CREATE USER IF NOT EXISTS root@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); ALTER USER root@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); GRANT ALL PRIVILEGES ON *.* TO root@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;" ||
        return 1
    fi
    mariadb_tcp_login || return 1
  fi
  "$client" --protocol=tcp -h"$HOST" -P3306 -uroot --connect-timeout=5 \
    -e 'CREATE DATABASE IF NOT EXISTS test' >/dev/null
}

mariadb_start() {
  local datadir=/var/lib/mysql
  mkdir -p "$LOG_DIR"
  as_root install -d -o mysql -g mysql -m 0755 /run/mysqld || return 1
  if [[ ! -d $datadir/mysql ]]; then
    note "initialising the MariaDB data directory $datadir"
    as_root install -d -o mysql -g mysql -m 0750 "$datadir" || return 1
    local installdb
    installdb=$(find_prog mariadb-install-db) || {
      note "mariadb-install-db not found"
      return 1
    }
    as_root "$installdb" --user=mysql --datadir="$datadir" >"$LOG_DIR/mariadb-install-db.log" 2>&1 || {
      tail -n 20 "$LOG_DIR/mariadb-install-db.log" >&2
      return 1
    }
  fi
  local -a extra=()
  local mpd
  # mariadbd refuses to run as root unless told which user to switch to; the stock Debian
  # configuration leaves `user` unset.
  if ! { mpd=$(find_prog my_print_defaults) && "$mpd" --mysqld 2>/dev/null | grep -q '^--user='; }; then
    extra=(-- --user=mysql)
  fi
  local ssd
  ssd=$(find_prog start-stop-daemon) || {
    note "start-stop-daemon not found"
    return 1
  }
  # --output keeps what mariadbd prints when it cannot start (the stock configuration logs to stderr).
  as_root "$ssd" --start --oknodo --background --output "$LOG_DIR/mariadbd.log" \
    --exec /usr/sbin/mariadbd "${extra[@]}"
}

ensure_mariadb() {
  local how="already running"
  if port_open 3306; then
    if [[ $CHECK_ONLY -eq 1 ]]; then
      if mariadb_tcp_login; then
        report MariaDB 3306 "up; root logs in over TCP without a password"
      elif ! mariadb_client >/dev/null; then
        report MariaDB 3306 "up (no mariadb client here to check the root login)"
      else
        report MariaDB 3306 "UP BUT root cannot log in over TCP without a password"
        return 1
      fi
      return 0
    fi
  else
    if [[ $CHECK_ONLY -eq 1 ]]; then
      report MariaDB 3306 "DOWN"
      return 1
    fi
    how="started"
    if [[ ! -x /usr/sbin/mariadbd ]]; then
      apt_install mariadb-server mariadb-client || return 1
      how="installed and started"
    fi
    # The package's own scripts may have started it already.
    if ! port_open 3306; then
      note "starting MariaDB"
      mariadb_start || return 1
      wait_port MariaDB 3306 || {
        tail -n 20 "$LOG_DIR/mariadbd.log" >&2 || true
        return 1
      }
    fi
  fi
  if ! mariadb_prepare; then
    note "MariaDB is up but root cannot log in over TCP without a password"
    return 1
  fi
  report MariaDB 3306 "up ($how; root logs in over TCP without a password; database test exists)"
}

# ---------------------------------------------------------------------------------------------
# Redis

ensure_redis() {
  if port_open 6379; then
    report Redis 6379 "$(already_up)"
    return 0
  fi
  if [[ $CHECK_ONLY -eq 1 ]]; then
    report Redis 6379 "DOWN"
    return 1
  fi
  local how="started" server
  if ! server=$(find_prog redis-server); then
    apt_install redis-server || return 1
    server=$(find_prog redis-server) || return 1
    how="installed and started"
  fi
  if ! port_open 6379; then
    note "starting Redis"
    as_root install -d -m 0750 /var/lib/redis /var/log/redis || return 1
    if getent passwd redis >/dev/null 2>&1; then
      as_root chown redis: /var/lib/redis /var/log/redis || true
    fi
    as_root "$server" --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || return 1
    wait_port Redis 6379 || {
      as_root tail -n 20 /var/log/redis/ci.log >&2 || true
      return 1
    }
  fi
  report Redis 6379 "up ($how)"
}

# ---------------------------------------------------------------------------------------------
# RabbitMQ

ensure_rabbitmq() {
  if port_open 5672; then
    report RabbitMQ 5672 "$(already_up)"
    return 0
  fi
  if [[ $CHECK_ONLY -eq 1 ]]; then
    report RabbitMQ 5672 "DOWN"
    return 1
  fi
  local how="started" server ctl
  if ! server=$(find_prog rabbitmq-server); then
    apt_install rabbitmq-server || return 1
    server=$(find_prog rabbitmq-server) || return 1
    how="installed and started"
  fi
  local started_at=$SECONDS
  if ! port_open 5672; then
    note "starting RabbitMQ (this takes a while)"
    mkdir -p "$LOG_DIR"
    as_root "$server" -detached >"$LOG_DIR/rabbitmq-server.log" 2>&1 || {
      tail -n 20 "$LOG_DIR/rabbitmq-server.log" >&2
      return 1
    }
    wait_port RabbitMQ 5672 || {
      tail -n 20 "$LOG_DIR/rabbitmq-server.log" >&2
      return 1
    }
  fi
  if ctl=$(find_prog rabbitmqctl); then
    mkdir -p "$LOG_DIR"
    local left=$((WAIT_SECS - (SECONDS - started_at)))
    ((left > 10)) || left=10
    if ! as_root timeout "$left" "$ctl" -q await_startup >"$LOG_DIR/rabbitmqctl.log" 2>&1; then
      tail -n 20 "$LOG_DIR/rabbitmqctl.log" >&2
      note "RabbitMQ answers on $HOST:5672 but did not finish starting within ${left}s"
      return 1
    fi
  fi
  report RabbitMQ 5672 "up ($how)"
}

# ---------------------------------------------------------------------------------------------

failed=()
# ensure NAME PORT FUNCTION: runs FUNCTION, recording NAME as failed when it fails.
ensure() {
  if ! "$3"; then
    [[ $CHECK_ONLY -eq 1 ]] || report "$1" "$2" "NOT UP (see the messages above)"
    failed+=("$1")
  fi
}
ensure MariaDB 3306 ensure_mariadb
ensure Redis 6379 ensure_redis
ensure RabbitMQ 5672 ensure_rabbitmq

if [[ ${#failed[@]} -gt 0 ]]; then
  if [[ $CHECK_ONLY -eq 1 ]]; then
    echo "ensure-services: not usable: ${failed[*]}" >&2
  else
    echo "ensure-services: could not bring up: ${failed[*]}" >&2
  fi
  exit 1
fi
