#!/usr/bin/env bash
# A private 3-master Redis Cluster on loopback, for the cluster tests.
#
#   bash .ci/redis-cluster.sh CMD [ARGS...]
#       starts the cluster, runs CMD with MPROC_TEST_REDIS_CLUSTER_URL
#       exported, stops the cluster and exits with CMD's status.
#
#   . .ci/redis-cluster.sh        (sourced)
#       the same, but leaves the cluster running and the variables exported
#       in the calling shell; it is stopped when that shell exits (or by
#       `mproc_cluster_stop`).
#
# Variables exported: MPROC_TEST_REDIS_CLUSTER_URL
# (redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/),
# MPROC_REDIS_CLUSTER_PORTS ("P1 P2 P3"), MPROC_REDIS_CLUSTER_DIR,
# MPROC_REQUIRE_REDIS_CLUSTER=1 (the cluster tests then fail rather than
# skip when the cluster is unreachable).
#
# Ports are below 55535: each node's cluster bus listens on port + 10000.

mproc_cluster_install() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        echo "redis-cluster.sh: installing redis-server redis-tools" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 || return 1
        apt-get install -y -qq redis-server redis-tools >&2 || return 1
    fi
}

mproc_cluster_stop() {
    [ -n "${MPROC_REDIS_CLUSTER_DIR:-}" ] || return 0
    local f pid pids=()
    for f in "$MPROC_REDIS_CLUSTER_DIR"/*/redis.pid; do
        pid=$(cat "$f" 2>/dev/null) || continue
        pids+=("$pid")
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$MPROC_REDIS_CLUSTER_DIR" || true
    unset MPROC_REDIS_CLUSTER_DIR MPROC_REDIS_CLUSTER_PORTS MPROC_TEST_REDIS_CLUSTER_URL MPROC_REQUIRE_REDIS_CLUSTER
    return 0
}

# Starts one cluster node in $MPROC_REDIS_CLUSTER_DIR/$1; prints its port.
mproc_cluster_node() {
    local dir="$MPROC_REDIS_CLUSTER_DIR/$1" port try
    mkdir -p "$dir"
    for try in $(seq 1 30); do
        port=$((20000 + RANDOM % 35000))
        # In the background rather than daemonized: its pid is known at
        # once, so a node that is slow to start is never left behind.
        redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes \
            --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
            --cluster-node-timeout 3000 \
            --save '' --appendonly no --daemonize no \
            --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
            >/dev/null 2>&1 </dev/null &
        echo $! >"$dir/redis.pid"
        for _ in $(seq 1 100); do
            if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
                echo "$port"
                return 0
            fi
            [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null || break
            sleep 0.1
        done
        if [ -f "$dir/redis.pid" ]; then kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -f "$dir/redis.pid"; fi
        rm -f "$dir/nodes.conf"
    done
    return 1
}

mproc_cluster_start() {
    mproc_cluster_install || { echo "redis-cluster.sh: cannot install redis-server" >&2; return 1; }
    MPROC_REDIS_CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mproc-redis-cluster.XXXXXX") || return 1
    export MPROC_REDIS_CLUSTER_DIR
    local ports=() p i addrs=()
    for i in 1 2 3; do
        p=$(mproc_cluster_node "n$i") || {
            echo "redis-cluster.sh: could not start node $i" >&2
            mproc_cluster_stop
            return 1
        }
        ports+=("$p")
        addrs+=("127.0.0.1:$p")
    done
    if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$MPROC_REDIS_CLUSTER_DIR/create.log" 2>&1; then
        echo "redis-cluster.sh: cluster create failed:" >&2
        cat "$MPROC_REDIS_CLUSTER_DIR/create.log" >&2
        mproc_cluster_stop
        return 1
    fi
    for _ in $(seq 1 100); do
        local ok=1
        for p in "${ports[@]}"; do
            redis-cli -h 127.0.0.1 -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || ok=0
        done
        [ "$ok" = 1 ] && break
        sleep 0.1
    done
    export MPROC_REDIS_CLUSTER_PORTS="${ports[*]}"
    export MPROC_TEST_REDIS_CLUSTER_URL="redis+cluster://$(IFS=,; echo "${addrs[*]}")/"
    export MPROC_REQUIRE_REDIS_CLUSTER=1
    echo "redis-cluster.sh: 3-master cluster on $MPROC_TEST_REDIS_CLUSTER_URL" >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -u
    if [ "$#" -eq 0 ]; then
        echo "usage: bash .ci/redis-cluster.sh CMD [ARGS...]   (or source it)" >&2
        exit 64
    fi
    mproc_cluster_start || exit 1
    trap mproc_cluster_stop EXIT
    trap 'exit 130' INT TERM
    "$@"
    exit $?
else
    mproc_cluster_start || return 1
    __mproc_prev_trap=$(trap -p EXIT | sed "s/^trap -- '\(.*\)' EXIT\$/\1/")
    # shellcheck disable=SC2064
    trap "mproc_cluster_stop${__mproc_prev_trap:+; $__mproc_prev_trap}" EXIT
    unset __mproc_prev_trap
fi
