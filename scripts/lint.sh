#!/usr/bin/env bash
# The project's executable conventions, run by scripts/test.sh before pytest (and alone while working):
# ruff (lint + format check), mypy (strict on the core; see [tool.mypy] in pyproject.toml) and
# import-linter (the architecture's import contracts; see [tool.importlinter]).
# `bash scripts/lint.sh --fix` applies ruff's fixes and formatting first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fix" ]; then
  python3 -m ruff check --fix -q workbench tests benchmarks scripts || true
  python3 -m ruff format -q workbench tests benchmarks scripts
fi
echo "== ruff check";  python3 -m ruff check -q workbench tests benchmarks scripts
echo "== ruff format"; python3 -m ruff format --check -q workbench tests benchmarks scripts
echo "== mypy";        python3 -m mypy
echo "== import-linter"; lint-imports --no-cache 2>&1 | tail -n 12
