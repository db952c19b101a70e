#!/usr/bin/env bash
# A real QGIS desktop window with the plugin: starts QGIS under Xvfb with a throw-away profile that has
# rs2sam2_qgis installed (a symlink to this checkout) and enabled, opens the dock on the bundled sample scene with
# the demo model (a drawn scene with the colour test model when the demo checkpoint is absent), and saves the window to
# docs/screenshot_dock.png (or $1). One command: `make screenshot` (kept out of the test run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-$ROOT/docs/screenshot_dock.png}
VENV=${RS2SAM2_VENV:-$ROOT/.venv}

if ! command -v qgis >/dev/null 2>&1; then
  echo "[screenshot] installing the QGIS desktop (apt-get install qgis)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends qgis xvfb xauth >/dev/null
fi

WORK=$(mktemp -d /tmp/rs2sam2_screenshot.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PROFILE=$WORK/profiles/default
mkdir -p "$PROFILE/python/plugins" "$PROFILE/QGIS"
ln -s "$ROOT/rs2sam2_qgis" "$PROFILE/python/plugins/rs2sam2_qgis"
cat > "$PROFILE/QGIS/QGIS3.ini" <<INI
[PythonPlugins]
rs2sam2_qgis=true

[qgis]
checkVersion=false
showTips=false
showTips322=false
allowVersionCheck=false
INI

SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
export PYTHONPATH="$SITE:$ROOT:$ROOT/tests${PYTHONPATH:+:$PYTHONPATH}"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/runtime-rs2sam2}
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
unset QT_QPA_PLATFORM   # a real X display (Xvfb), not offscreen
export RS2SAM2_SCREENSHOT="$OUT" RS2SAM2_SCREENSHOT_WORK="$WORK" RS2SAM2_RESULTS_DIR="$WORK/results"
rm -f "$OUT.done"
timeout 300 xvfb-run -a -s "-screen 0 1600x1000x24" \
  qgis --nologo --noversioncheck --profiles-path "$WORK" --code "$ROOT/scripts/qgis_screenshot_start.py" \
  >"$WORK/qgis.log" 2>&1 || true
if [ ! -f "$OUT.done" ]; then
  echo "[screenshot] QGIS did not save the screenshot; its output:" >&2
  tail -40 "$WORK/qgis.log" >&2
  exit 1
fi
cat "$OUT.done"
rm -f "$OUT.done"
echo "[screenshot] saved $OUT"
