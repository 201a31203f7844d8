#!/usr/bin/env bash
# The project's executable conventions, run by scripts/test.sh before pytest (and alone while working):
# ruff (lint + format check), mypy (strict on the core; see [tool.mypy] in pyproject.toml) and
# import-linter (the architecture's import contracts; see [tool.importlinter]).
#
#   bash scripts/lint.sh            every check; exits non-zero if any fails (all of them run regardless)
#   bash scripts/lint.sh --fix      applies ruff's fixes and formatting first
#   WORKBENCH_LINT_FORMAT=0 ...     skips the format check (while several branches are open the tree is
#                                   formatted once, after they merge; default 1: checked)
set -euo pipefail
cd "$(dirname "$0")/.."
# check this checkout, whichever copy of workbench is pip-installed
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PATHS=(workbench tests benchmarks scripts)

if [ "${1:-}" = "--fix" ]; then
  python3 -m ruff check --fix -q "${PATHS[@]}" || true
  python3 -m ruff format -q "${PATHS[@]}"
fi

failed=()
echo "== ruff check"
python3 -m ruff check -q "${PATHS[@]}" || failed+=("ruff check")

if [ "${WORKBENCH_LINT_FORMAT:-1}" != "0" ]; then
  echo "== ruff format"
  if ! out=$(python3 -m ruff format --check "${PATHS[@]}" 2>&1); then
    printf '%s\n' "$out" | tail -n 1  # "N files would be reformatted": `bash scripts/lint.sh --fix` formats them
    failed+=("ruff format")
  fi
else
  echo "== ruff format: skipped (WORKBENCH_LINT_FORMAT=0)"
fi

echo "== mypy"
python3 -m mypy || failed+=("mypy")

echo "== import-linter"
# its report opens with a drawing of the package; the contracts' verdicts (and what broke them) follow
if out=$(lint-imports --no-cache 2>&1); then
  printf '%s\n' "$out" | grep -E "KEPT|BROKEN|^Contracts:" || true
else
  printf '%s\n' "$out" | sed -n '/^Contracts$/,$p'
  failed+=("import-linter")
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "lint failed: ${failed[*]}" >&2
  exit 1
fi
echo "lint: all checks passed"
