#!/usr/bin/env bash
# The whole test suite. Creates .venv on first use and installs dutyflow with its test
# extras (pinned in pyproject.toml) and the Debian packages for PDF notices
# and Debian's Chromium for the browser test (deployments/system-packages.sh --test), then
# runs pytest on one worker per core (pytest-xdist; each worker copies the run's migrated
# template database per test). Extra arguments go to pytest (-n 0: one process).
# DUTYFLOW_TEST_POSTGRES_URL=postgresql+psycopg://… runs every test on PostgreSQL instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deployments/system-packages.sh --test
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
parallel=(-n auto --dist worksteal)
for arg in "$@"; do
  case "$arg" in -n|-n*|--numprocesses*) parallel=() ;; esac
done
exec .venv/bin/python -m pytest "${parallel[@]}" "$@"
