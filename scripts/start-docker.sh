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

if pgrep -x dockerd >/dev/null 2>&1; then
    echo "start-docker: dockerd already running (pid $(pgrep -x dockerd | head -1)); waiting for it"
else
    # Stale socket/pid from a dead daemon would make dockerd refuse to start.
    if [ -e /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null; then
        $SUDO rm -f /var/run/docker.pid
    fi
    # setsid: own session/process group, so a CI job runner that kills the
    # caller's process group at the end of a step does not take dockerd down.
    # 9>&-: the daemon must not inherit (and so hold forever) our lock.
    $SUDO setsid nohup dockerd --bridge=none --iptables=false >>"$LOG" 2>&1 </dev/null 9>&- &
    echo "start-docker: started dockerd (pid $!), log: $LOG"
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
