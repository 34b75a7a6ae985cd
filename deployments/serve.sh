#!/usr/bin/env bash
# The main job: installs dutyflow into .venv on first use, then `dutyflow serve`
# (embedded Prefect server on SQLite + every deployment, demo org loaded, offline).
# Arguments go to `dutyflow serve` (e.g. --host 0.0.0.0 --port 4200).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deployments/system-packages.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/dutyflow serve "$@"
