#!/usr/bin/env bash
# Builds the project's environment from nothing on Debian 12, idempotently:
#   Debian's QGIS 3.22 Python bindings (apt) + a venv made from QGIS's own Python (/usr/bin/python3,
#   --system-site-packages) holding torch, sam2, open_clip, torchscale, rasterio & co, pinned by constraints.txt
#   so that they coexist with QGIS's GDAL/numpy in one process.
# A second run checks a stamp (hash of the files that define the environment) and returns in seconds.
set -euo pipefail
# sam2 would otherwise try to compile its optional CUDA extension.
export SAM2_BUILD_CUDA=0
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${RS2SAM2_VENV:-$ROOT/.venv}
SYS_PY=/usr/bin/python3
# qgis (desktop) brings qgis_process.bin for the headless Processing tests and the window for `make screenshot`.
APT_PACKAGES="qgis python3-qgis qgis-providers python3-venv xvfb xauth"

log() { printf '[setup_env] %s\n' "$*"; }

# 1. QGIS from Debian (installed only when something of it is missing).
if ! "$SYS_PY" -c "import qgis.core" >/dev/null 2>&1 || ! command -v xvfb-run >/dev/null 2>&1 \
   || ! command -v qgis_process.bin >/dev/null 2>&1; then
  log "installing Debian packages: $APT_PACKAGES"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $APT_PACKAGES >/dev/null
fi

# 2. The venv, rebuilt only when the files that define it change.
STAMP_SRC=$(cat constraints.txt pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)
STAMP=$VENV/.rs2sam2-env-$STAMP_SRC
if [ -f "$STAMP" ]; then
  log "environment up to date ($VENV)"
  exit 0
fi

START=$(date +%s)
[ -x "$VENV/bin/python" ] || "$SYS_PY" -m venv --system-site-packages "$VENV"
# The machine's pip config names local wheel folders that may be absent; its "is ignored" warnings are noise.
pip_install() {
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -c "$ROOT/constraints.txt" "$@" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

log "installing torch + torchvision"
pip_install torch torchvision
log "installing geospatial and model packages"
pip_install "setuptools>=69" wheel numpy affine pyproj rasterio shapely pyogrio tqdm pillow safetensors \
  sentencepiece open_clip_torch timm fairscale hydra-core iopath pytest
# sam2 would otherwise re-download torch into a build environment and try to compile CUDA.
log "installing sam2 (no CUDA extension)"
pip_install --no-build-isolation sam2
# sam2's wheel also installs its own training scripts as a top-level `training` package, which would shadow
# ours (`rs2sam2 train` run outside the repo imported sam2's). We use none of it: remove it.
"$VENV/bin/python" - <<'PY'
import pathlib, shutil, sysconfig
site = pathlib.Path(sysconfig.get_paths()["purelib"])
stray = site / "training"
if (stray / "trainer.py").exists():  # sam2's, not ours
    shutil.rmtree(stray)
PY
# torchscale 0.3.0 pins timm==0.6.13 and fairscale==0.4.0, which clash with open_clip's timm>=1.0.17;
# the modules we use only need timm's drop_path and fairscale's wrappers, both present in the newer releases.
pip_install --no-deps torchscale
# optional extra [ray] (rs2sam2 batch --ray); the batch tests run it on a local cluster
log "installing ray (optional extra)"
pip_install "ray==2.60.0"
# test-only extra: transformers' slow XLM-R tokenizer, the reference of tests/test_tokenizer_xlmr.py
log "installing transformers (test only)"
pip_install transformers
# test-only extra: hypothesis, the property-based fuzz suite (tests/test_fuzz_contract.py)
log "installing hypothesis (test only)"
pip_install hypothesis
# test-only: ruff, the linter make test runs before pytest
log "installing ruff (test only)"
pip_install ruff
log "installing this project (editable)"
pip_install --no-deps --no-build-isolation -e "$ROOT"

rm -f "$VENV"/.rs2sam2-env-*
touch "$STAMP"
log "environment built in $(( $(date +%s) - START )) s; venv size $(du -sh "$VENV" | cut -f1)"
