"""The engine's process: `python -m rs2sam2_qgis.worker` runs one job read from stdin (JSON) and reports JSON lines
on stdout. Imports nothing from QGIS.

Why a separate process: inside QGIS (the `qgis` and `qgis_process.bin` executables) the system's PROJ/GDAL/GEOS
libraries are linked into the executable itself, so their symbols take precedence over the copies bundled in the
pyproj/rasterio/pyogrio wheels; importing those wheels there hangs or aborts (seen on Debian 12 + QGIS 3.22:
`import pyproj` -> std::bad_alloc, `import rasterio` hangs). A plain Python process has no such libraries in its
global symbol scope. The process also keeps a crash or an out-of-memory in torch away from QGIS, and is cancelled
cleanly through the engine's is_cancelled hook (a flag file), or killed as a last resort (outputs are atomic).

Jobs:
  {"action": "segment", "request": SegmentRequest.to_dict() (pipeline/request.py), "cancel_file": optional path}
      -> {"type": "progress", "fraction", "message"}* then {"type": "done", "layers", "count", "counts", "stats",
         "queries", "output"}
  {"action": "export", "result_file", "output", "layer": optional, "append": bool} -> {"type": "done", "layers"}
  {"action": "probe"} -> {"type": "done", "devices": {...}, "presets": [...]}
Failures: {"type": "error", "kind": "input" | "cancelled" | "internal", "message", "trace"}.

`python -m rs2sam2_qgis.worker --serve` keeps running and takes one job per stdin line, so the model stays loaded
between runs (a PredictorCache); it ends when stdin closes (QGIS quits).
"""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import sys
import traceback


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


_FEATURES = None  # this worker's tile-feature cache, kept between jobs (see _feature_cache)
_PREDICTORS = None  # this worker's last model, kept between jobs (see _predictor_cache)


def _predictor_cache():
    global _PREDICTORS
    if _PREDICTORS is None:
        from rs2sam2_qgis.pipeline.predictors import PredictorCache

        _PREDICTORS = PredictorCache()
    return _PREDICTORS


def _feature_cache():
    """Tile features kept between the runs of this long-lived worker (bounded LRU in memory, keyed by raster,
    window, bands and model digest), so a second query on the same layer with a model whose image side is
    text-free (RSRefSeg) encodes no tile again. Models that do not allow it never touch the cache."""
    global _FEATURES
    if _FEATURES is None:
        from rs2sam2_qgis.pipeline import SegmentOptions
        from rs2sam2_qgis.pipeline.tile_feature_cache import FeatureCache

        _FEATURES = FeatureCache(memory_mb=SegmentOptions().feature_cache_memory_mb)
    return _FEATURES


def _segment(job: dict) -> dict:
    from rs2sam2_qgis.pipeline.request import SegmentRequest
    from rs2sam2_qgis.pipeline.request_run import run_request

    request = SegmentRequest.from_dict(job["request"])
    cancel_file = job.get("cancel_file")

    def is_cancelled() -> bool:
        return bool(cancel_file) and os.path.exists(cancel_file)

    def progress(fraction, message=""):
        emit({"type": "progress", "fraction": float(fraction), "message": str(message)})

    progress(0.0, "loading model")
    predictor = _predictor_cache().get(request.model)
    progress(0.0, f"model loaded on {predictor.device}")
    result, layers = run_request(request, predictor, progress=progress, is_cancelled=is_cancelled,
                                 feature_cache=_feature_cache())
    stats = dataclasses.asdict(result.stats) if dataclasses.is_dataclass(result.stats) else {}
    return {"type": "done", "output": request.output, "layers": layers, "queries": list(result.queries),
            "count": result.count, "counts": {q: len(result.polygons[q]) for q in result.queries}, "stats": stats}


def _export(job: dict) -> dict:
    from rs2sam2_qgis.pipeline import write_vector

    with open(job["result_file"], "rb") as fh:
        result = pickle.load(fh)  # noqa: S301 - our own file, written by _segment
    layers = write_vector(result, job["output"], layer=job.get("layer"), append=bool(job.get("append", True)))
    return {"type": "done", "output": job["output"], "layers": list(layers)}


def _probe(job: dict) -> dict:
    from rs2sam2_qgis.bootstrap import device_report
    from rs2sam2_qgis.pipeline.model_spec import preset_names

    return {"type": "done", "devices": device_report(), "presets": preset_names()}


ACTIONS = {"segment": _segment, "export": _export, "probe": _probe}


def handle(line: str) -> int:
    """Runs one job line; emits its final message; returns an exit-code-like status."""
    try:
        job = json.loads(line or "{}")
    except json.JSONDecodeError as exc:
        emit({"type": "error", "kind": "internal", "message": f"bad job: {exc}", "trace": ""})
        return 2
    for path in job.get("sys_path", []):
        if path not in sys.path:
            sys.path.append(path)
    try:
        action = ACTIONS[job.get("action", "")]
    except KeyError:
        emit({"type": "error", "kind": "internal", "message": f"unknown action {job.get('action')!r}", "trace": ""})
        return 2
    try:
        from rs2sam2_qgis.pipeline import Cancelled, InputError
    except Exception as exc:  # noqa: BLE001
        emit({"type": "error", "kind": "internal", "trace": traceback.format_exc(),
              "message": f"the rs2sam2 engine cannot be imported ({type(exc).__name__}: {exc}); use 'Model settings "
                         "> Check dependencies' in the rs2sam2 menu"})
        return 1
    try:
        emit(action(job))
        return 0
    except Cancelled:
        emit({"type": "error", "kind": "cancelled", "message": "cancelled; nothing was written", "trace": ""})
        return 3
    except (InputError, FileNotFoundError) as exc:
        emit({"type": "error", "kind": "input", "message": " ".join(str(exc).split()), "trace": ""})
        return 2
    except Exception as exc:  # noqa: BLE001
        emit({"type": "error", "kind": "internal", "message": f"{type(exc).__name__}: {exc}",
              "trace": traceback.format_exc()})
        return 1


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--serve" in argv:
        for line in sys.stdin:
            if line.strip():
                handle(line)
        return 0
    return handle(sys.stdin.readline())


if __name__ == "__main__":
    sys.exit(main())
