#!/usr/bin/env bash
# The whole test suite. Creates .venv on first use and installs dutyflow with its test
# extras (pinned in pyproject.toml) and the Debian packages for PDF notices
# and Debian's Chromium for the browser test (deployments/system-packages.sh --test), then
# runs pytest on parallel workers (pytest-xdist, a worker per core and one more; each worker
# copies its migrated template database per test). Extra arguments go to pytest (-n 0: one process).
# DUTYFLOW_TEST_POSTGRES_URL=postgresql+psycopg://… runs every test on PostgreSQL instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deployments/system-packages.sh --test
[ -x .venv/bin/python ] || python3 -m venv .venv
# installed once per pyproject.toml (a stamp in .venv): a second run starts at once
stamp=.venv/.dutyflow-test-install
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
  echo "$want" > "$stamp"
fi
# a worker per core and one more, to use the time a worker spends waiting (a served instance
# starting, the topology's crash waits); idle workers take pending tests from busy ones
parallel=(-n "$(( $(nproc) + 1 ))" --dist worksteal)
for arg in "$@"; do
  case "$arg" in -n|-n*|--numprocesses*) parallel=() ;; esac
done
exec .venv/bin/python -m pytest "${parallel[@]}" "$@"
