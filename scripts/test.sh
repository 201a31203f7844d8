#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs the Python and system packages the tests need,
# runs scripts/lint.sh (ruff, mypy, import-linter), starts a Docker engine and builds the local base image
# when they are missing, then runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/test_runtime.py -x).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1

echo "== python packages"
python3 -m pip install -q --disable-pip-version-check -e ".[test]"

# the conventions before anything slow: ruff, mypy and the import contracts
# (WORKBENCH_LINT=0 skips them, e.g. while re-running one test file; WORKBENCH_LINT_FORMAT=0 skips only
# the format check)
if [ "${WORKBENCH_LINT:-1}" != "0" ]; then
  echo "== lint"
  bash scripts/lint.sh
fi

need=()
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "== system packages: ${need[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== docker engine and base image"
if ! $SUDO bash scripts/start-docker.sh || ! $SUDO bash scripts/build-base-image.sh; then
  if [ "${WORKBENCH_REQUIRE_DOCKER:-0}" = "1" ]; then
    echo "no Docker engine, and WORKBENCH_REQUIRE_DOCKER=1: failing" >&2
    exit 1
  fi
  echo "no Docker engine: tests that need one will be skipped" >&2
fi

echo "== tests"
# --durations=25: every log ends with the slowest tests, so a test that grows slow shows where CI time went.
# Two workers (pytest-xdist), each test file on one worker (--dist loadfile: a file's fixtures, moto server and
# Kubernetes emulator are set up once per worker): the suite mostly waits on containers and API servers
# (load 2-4 on 2 cores with two workers), and took 599 s instead of about 1,300 s serially.
# WORKBENCH_TEST_WORKERS=0 runs it in this process, serially.
workers="${WORKBENCH_TEST_WORKERS:-2}"
exec python3 -m pytest -q --durations=25 -n "$workers" --dist loadfile "$@"
