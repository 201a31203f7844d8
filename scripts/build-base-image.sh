#!/usr/bin/env bash
# Build the local base image for workbench containers, idempotently.
#
# No container registry is reachable here, so `docker pull` is impossible: the
# image is built from Debian packages with debootstrap and `docker import`ed.
# Skips everything when the image already exists (`docker image inspect`).
#
#   WORKBENCH_BASE_IMAGE  image name (default workbench-base:bookworm)
#   WORKBENCH_DEBIAN_MIRROR  Debian mirror (default: the one apt on this machine uses)
#
# Contents: Debian bookworm minbase + python3, python3-boto3 (remote tasks
# reach S3), python3-numpy (flows pass numpy arrays between steps).
set -euo pipefail

IMAGE="${WORKBENCH_BASE_IMAGE:-workbench-base:bookworm}"
SUITE=bookworm
PACKAGES=python3,python3-boto3,python3-numpy

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "build-base-image: $IMAGE already present"
    exit 0
fi

# Serialise concurrent builds (e.g. two test sessions); re-check after the lock.
exec 9>"/tmp/workbench-base-image.lock"
flock -w 900 9 || { echo "build-base-image: timed out waiting for the build lock" >&2; exit 1; }
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "build-base-image: $IMAGE already present (built concurrently)"
    exit 0
fi

t_start=$(date +%s.%N)
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }

if ! command -v debootstrap >/dev/null 2>&1; then
    t0=$(date +%s.%N)
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq debootstrap >/dev/null
    echo "build-base-image: installed debootstrap in $(elapsed "$t0") s"
fi

# The Debian mirror apt on this machine already uses (only the Debian registry
# is reachable, so debootstrap must use that one).
find_mirror() {
    local uri
    uri=$(
        {
            grep -hs '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{for (i=2;i<=NF;i++) print $i}'
            grep -hs '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                | sed -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{print $1}'
        } | grep -E '/debian/?$' | head -n1
    )
    echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR="${WORKBENCH_DEBIAN_MIRROR:-$(find_mirror)}"

WORK=$(mktemp -d /var/tmp/workbench-base.XXXXXX)
cleanup() {
    # debootstrap may leave proc/sys mounted on failure
    for m in proc sys dev/pts; do umount -l "$WORK/rootfs/$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

echo "build-base-image: debootstrap $SUITE from $MIRROR (+$PACKAGES)"
t0=$(date +%s.%N)
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    echo "build-base-image: debootstrap failed; last lines:" >&2
    tail -n 30 "$WORK/debootstrap.log" >&2
    tail -n 30 "$WORK/rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    exit 1
fi
echo "build-base-image: debootstrap took $(elapsed "$t0") s"

# Shrink: package caches and lists are useless in the image.
rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/* 2>/dev/null || true

t0=$(date +%s.%N)
# An imported image has no config at all: set PATH/LANG explicitly so
# `docker run IMAGE python3 ...` never depends on daemon defaults.
tar --numeric-owner -C "$WORK/rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "workbench base: debian $SUITE minbase + $PACKAGES" \
    - "$IMAGE" >/dev/null
echo "build-base-image: docker import took $(elapsed "$t0") s"

size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
echo "build-base-image: built $IMAGE ($((size / 1024 / 1024)) MB) in $(elapsed "$t_start") s total"
