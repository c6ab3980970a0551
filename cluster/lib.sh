# Shared by the cluster/ scripts: where a local cluster lives and how its nodes are named.
# KEEL_CLUSTER_DIR (default ./.keel/cluster at the repository root) holds node-N/ (data), node-N.log, node-N.pid
# and cluster.env (the size and ports the cluster was started with).
# Node N listens for clients on KEEL_BASE_PORT+N-1 (default 9092, 9093, ...) and for its peers on
# KEEL_CLUSTER_BASE_PORT+N-1 (default 19092, 19093, ...).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="${KEEL_CLUSTER_DIR:-$ROOT/.keel/cluster}"
ENV_FILE="$CLUSTER_DIR/cluster.env"
if [ -f "$ENV_FILE" ]; then
    # shellcheck disable=SC1090
    . "$ENV_FILE"
fi
NODES="${NODES:-3}"
BASE_PORT="${KEEL_BASE_PORT:-${BASE_PORT:-9092}}"
CLUSTER_BASE_PORT="${KEEL_CLUSTER_BASE_PORT:-${CLUSTER_BASE_PORT:-19092}}"
KEEL="${KEEL_BIN:-$ROOT/.build/release/keel}"

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

client_port() { echo $((BASE_PORT + $1 - 1)); }
cluster_port() { echo $((CLUSTER_BASE_PORT + $1 - 1)); }

voters() {
    local list="" n
    for n in $(seq 1 "$NODES"); do list="$list${list:+,}$n@127.0.0.1:$(cluster_port "$n")"; done
    echo "$list"
}

bootstrap() {
    local list="" n
    for n in $(seq 1 "$NODES"); do list="$list${list:+,}127.0.0.1:$(client_port "$n")"; done
    echo "$list"
}

# True while process $1 runs. A zombie (exited, not yet reaped: in some containers nothing reaps orphans) counts
# as exited.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo X)"
    [ "$state" != Z ] && [ "$state" != X ]
}

pid_of() {
    local file="$CLUSTER_DIR/node-$1.pid"
    [ -f "$file" ] || return 1
    local pid
    pid="$(cat "$file")"
    alive "$pid" || return 1
    echo "$pid"
}

check_node() {
    [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$NODES" ] || die "node '$1' is not one of 1..$NODES"
}

# Starts node N in the background (its data, log and pid file under CLUSTER_DIR).
start_node() {
    local n="$1"
    if pid_of "$n" >/dev/null; then echo "node $n is already running (pid $(pid_of "$n"))"; return 0; fi
    mkdir -p "$CLUSTER_DIR/node-$n"
    nohup "$KEEL" broker --id "$n" --data-dir "$CLUSTER_DIR/node-$n" \
        --listen "127.0.0.1:$(client_port "$n")" --cluster-listen "127.0.0.1:$(cluster_port "$n")" \
        --voters "$(voters)" ${KEEL_BROKER_ARGS:-} >>"$CLUSTER_DIR/node-$n.log" 2>&1 &
    echo $! >"$CLUSTER_DIR/node-$n.pid"
}

# Waits until every running node reports that it has caught up with the cluster metadata (it registered, so the
# controller has a leader), at most $1 seconds.
wait_ready() {
    local deadline=$((SECONDS + $1)) n ready
    while :; do
        ready=0
        for n in $(seq 1 "$NODES"); do
            if pid_of "$n" >/dev/null && [ -f "$CLUSTER_DIR/node-$n/status.json" ] &&
                grep -q '"caught_up":true' "$CLUSTER_DIR/node-$n/status.json"; then
                ready=$((ready + 1))
            fi
        done
        local running=0
        for n in $(seq 1 "$NODES"); do pid_of "$n" >/dev/null && running=$((running + 1)); done
        [ "$running" -gt 0 ] && [ "$ready" -eq "$running" ] && return 0
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}
