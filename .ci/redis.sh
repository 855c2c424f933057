#!/usr/bin/env bash
# A private Redis server on a free loopback port, for the Redis tests.
#
# Two ways to use it:
#
#   bash .ci/redis.sh CMD [ARGS...]
#       installs redis-server if missing (Debian package), starts a server in
#       a temporary directory, runs CMD with MPROC_TEST_REDIS_URL and
#       MPROC_REQUIRE_REDIS=1 exported, stops the server and exits with
#       CMD's status. A server that cannot be started is a failure.
#
#   . .ci/redis.sh        (sourced)
#       the same, but leaves the server running and the variables exported
#       in the calling shell; call `mproc_redis_stop` when done.
#
# Variables exported: MPROC_TEST_REDIS_URL (redis://127.0.0.1:PORT/),
# MPROC_REQUIRE_REDIS=1, MPROC_REDIS_PORT, MPROC_REDIS_DIR.

mproc_redis_install() {
    local need=()
    command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
    command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
    # The redis crate's TLS support (rediss://) builds against OpenSSL; the
    # TLS test makes its certificate with the openssl command.
    if ! pkg-config --exists openssl 2>/dev/null; then
        need+=(libssl-dev pkg-config)
    fi
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    if [ "${#need[@]}" -gt 0 ]; then
        echo "redis.sh: installing ${need[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 || return 1
        apt-get install -y -qq "${need[@]}" >&2 || return 1
    fi
}

mproc_redis_start() {
    mproc_redis_install || { echo "redis.sh: cannot install redis-server" >&2; return 1; }
    MPROC_REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mproc-redis.XXXXXX") || return 1
    local port try
    for try in $(seq 1 30); do
        port=$((20000 + RANDOM % 30000))
        # In the background rather than daemonized: its pid is known at
        # once, so a server that is slow to start is never left behind.
        redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes \
            --save '' --appendonly no --daemonize no \
            --dir "$MPROC_REDIS_DIR" --pidfile "$MPROC_REDIS_DIR/redis.pid" \
            --logfile "$MPROC_REDIS_DIR/redis.log" >/dev/null 2>&1 </dev/null &
        echo $! >"$MPROC_REDIS_DIR/redis.pid"
        for _ in $(seq 1 100); do
            if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
                export MPROC_REDIS_PORT=$port MPROC_REDIS_DIR
                export MPROC_TEST_REDIS_URL="redis://127.0.0.1:$port/"
                export MPROC_REQUIRE_REDIS=1
                echo "redis.sh: redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on $MPROC_TEST_REDIS_URL" >&2
                return 0
            fi
            # The port may have been taken: the server exits, try another.
            [ -f "$MPROC_REDIS_DIR/redis.pid" ] && kill -0 "$(cat "$MPROC_REDIS_DIR/redis.pid")" 2>/dev/null || break
            sleep 0.1
        done
        mproc_redis_stop_pid
    done
    echo "redis.sh: could not start redis-server; log:" >&2
    cat "$MPROC_REDIS_DIR/redis.log" >&2 2>/dev/null
    return 1
}

mproc_redis_stop_pid() {
    if [ -f "$MPROC_REDIS_DIR/redis.pid" ]; then
        local pid
        pid=$(cat "$MPROC_REDIS_DIR/redis.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$MPROC_REDIS_DIR/redis.pid"
    fi
    return 0
}

mproc_redis_stop() {
    [ -n "${MPROC_REDIS_DIR:-}" ] || return 0
    mproc_redis_stop_pid
    rm -rf "$MPROC_REDIS_DIR" || true
    unset MPROC_REDIS_DIR MPROC_REDIS_PORT MPROC_TEST_REDIS_URL
    return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    # Run as a script: wrap the command.
    set -u
    if [ "$#" -eq 0 ]; then
        echo "usage: bash .ci/redis.sh CMD [ARGS...]   (or source it)" >&2
        exit 64
    fi
    mproc_redis_start || exit 1
    trap mproc_redis_stop EXIT
    trap 'exit 130' INT TERM
    "$@"
    exit $?
else
    # Sourced: stop the server when the calling shell exits, after any
    # EXIT trap it already had.
    mproc_redis_start || return 1
    __mproc_prev_trap=$(trap -p EXIT | sed "s/^trap -- '\(.*\)' EXIT\$/\1/")
    # shellcheck disable=SC2064
    trap "mproc_redis_stop${__mproc_prev_trap:+; $__mproc_prev_trap}" EXIT
    unset __mproc_prev_trap
fi
