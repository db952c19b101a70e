#!/usr/bin/env bash
# The GPU check of issue 18 in one command (under 8 minutes on one H100/H200); bench/gpu_check.py says what it runs.
#   bash bench/gpu_check.sh              # on a GPU: writes bench/results/gpu_check_<gpu>.md and .json
#   bash bench/gpu_check.sh --dry-run    # on CPU, tiny sizes (make test runs this): the script cannot rot
# Options: --out DIR, --steps abcd. Python: $PYTHON, else .venv/bin/python, else python3. That Python needs the
# project's requirements (make env); on a bare GPU machine carry the missing ones as wheels, and the golden fixture
# (../shared/reference/golden) must sit beside the checkout for step (b).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
exec "$PY" bench/gpu_check.py --command "bash bench/gpu_check.sh $*" "$@"
