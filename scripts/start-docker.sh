#!/usr/bin/env bash
# Start a real Docker engine on this machine, idempotently.
#
# - If `docker info` already works: exit 0 immediately.
# - Installs docker.io from Debian only when dockerd is missing.
# - Starts dockerd WITHOUT a bridge network (--bridge=none --iptables=false):
#   containers must use network_mode=host or none. Never create a bridge here.
# - If a dockerd is already running but its socket is not ready yet, waits for
#   it instead of starting a second daemon.
# Safe in CI: runs as root, no TTY needed.
set -euo pipefail

LOG="${WORKBENCH_DOCKERD_LOG:-/tmp/workbench-dockerd.log}"
SOCK=/var/run/docker.sock
TIMEOUT="${WORKBENCH_DOCKERD_TIMEOUT:-60}"

engine_ok() { docker info >/dev/null 2>&1; }

if engine_ok; then
    echo "start-docker: Docker engine already up ($(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
    exit 0
fi

# Serialise concurrent callers (parallel CI steps): only one installs/starts.
exec 9>"/tmp/workbench-start-docker.lock"
flock -w 300 9 || { echo "start-docker: timed out waiting for /tmp/workbench-start-docker.lock" >&2; exit 1; }
if engine_ok; then
    echo "start-docker: Docker engine already up (started concurrently)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

if ! command -v dockerd >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    t0=$(date +%s)
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        docker.io >/dev/null
    echo "start-docker: installed docker.io in $(( $(date +%s) - t0 )) s"
fi

# A live dockerd (not a zombie or one still exiting after being killed), if any.
live_dockerd() {
    local pid state
    for pid in $(pgrep -x dockerd 2>/dev/null); do
        state=$(ps -o stat= -p "$pid" 2>/dev/null | tr -d ' ')
        case "$state" in Z*|"") ;; *) echo "$pid"; return 0 ;; esac
    done
    return 1
}

start_dockerd() {
    # Called only when no live dockerd exists: a pid file is stale (its process may still be a zombie, so
    # kill -0 would say "alive"), and dockerd refuses to start while it is there.
    $SUDO rm -f /var/run/docker.pid
    # The containerd a killed dockerd had started keeps running and holds its socket; the new daemon would
    # time out starting its own. With no live dockerd it is an orphan: stop it.
    if pgrep -f "containerd --config /var/run/docker/containerd/containerd.toml" >/dev/null 2>&1; then
        $SUDO pkill -9 -f "containerd --config /var/run/docker/containerd/containerd.toml" || true
        sleep 0.5
    fi
    # Its pid file may name a zombie (nothing reaps orphans in some sandboxes): dockerd would take that
    # containerd for alive and wait for it forever instead of starting its own.
    $SUDO rm -f /var/run/docker/containerd/containerd.pid /var/run/docker/containerd/containerd.sock
    # setsid: own session/process group, so a CI job runner that kills the
    # caller's process group at the end of a step does not take dockerd down.
    # 9>&-: the daemon must not inherit (and so hold forever) our lock.
    $SUDO setsid nohup dockerd --bridge=none --iptables=false >>"$LOG" 2>&1 </dev/null 9>&- &
    echo "start-docker: started dockerd (pid $!), log: $LOG"
}

if pid=$(live_dockerd); then
    echo "start-docker: dockerd already running (pid $pid); waiting for it"
    # a daemon left over from a killed session may never answer: give it a while, then replace it
    wait_until=$(( $(date +%s) + 20 ))
    until engine_ok || [ "$(date +%s)" -ge "$wait_until" ]; do sleep 0.5; done
    if ! engine_ok; then
        echo "start-docker: dockerd (pid $pid) does not answer; restarting it"
        $SUDO kill -9 "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do live_dockerd >/dev/null || break; sleep 0.5; done
        start_dockerd
    fi
else
    start_dockerd
fi

deadline=$(( $(date +%s) + TIMEOUT ))
until [ -S "$SOCK" ] && engine_ok; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "start-docker: engine not ready after ${TIMEOUT} s; last log lines:" >&2
        tail -n 30 "$LOG" >&2 || true
        exit 1
    fi
    sleep 0.5
done

echo "start-docker: Docker engine up: $(docker info --format 'server {{.ServerVersion}}, cgroup v{{.CgroupVersion}}, {{.Driver}}')"
