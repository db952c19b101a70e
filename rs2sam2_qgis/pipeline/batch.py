"""rs2sam2 batch: many rasters through the one engine (``segment_raster`` + ``write_vector``), locally or on Ray.

    run_batch(inputs, queries, out, model=ModelChoice("demo"), options=SegmentOptions(...), workers=1, ray=False,
              resume=False)

Inputs are files, folders (searched recursively for rasters), globs, or text files (.txt/.lst/.list) with one
path or URL per line; ``http(s)://``, ``s3://`` and ``gs://`` become GDAL's ``/vsicurl/``, ``/vsis3/`` and
``/vsigs/``, and ``/vsi...`` names pass through untouched.

Output: ``out`` a folder -> one GeoPackage per raster (``<raster stem>.gpkg``; a short hash of the path is added when
two rasters share a stem); ``out`` a ``.gpkg`` file -> the per-raster GeoPackages are staged in ``<stem>.parts/`` and
merged at the end, by this one process, into ``out`` with a ``source`` column (atomically: a temporary file renamed
over ``out``).

Every per-raster GeoPackage is written by the driver process only: ``write_vector`` to a hidden temporary name, its
sha256 taken, renamed into place, and only then a line appended (and fsync'ed) to ``manifest.jsonl``. ``resume``
skips a raster whose manifest entry matches this run's signature (queries, options, model) and whose file still
has the recorded size and sha256. So an interrupted run (Ctrl-C, kill, a dead worker) leaves only complete outputs,
a worker's result is written once (results of a replaced worker are never accepted twice), and a resumed run redoes
exactly what is missing. A raster that raises is retried ``retries`` times, then recorded in ``failures.csv``
(source, attempts, error) and the run goes on.

Local (default): the model is loaded once; rasters stream through ``segment_raster`` (which reads tiles ahead of
inference in a thread) while the next raster is opened and its statistics read ahead in another thread; tqdm bars
over rasters and tiles. Ray: see ``batch_ray.py``.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from .batch_ray import run_ray
from .batch_state import BatchRun, BatchSummary, peak_rss_mb, write_failures
from .errors import Cancelled, InputError
from .options import SegmentOptions
from .predictors import make_predictor, model_factory
from .request import ModelChoice
from .run import clean_queries, segment_raster

RASTER_EXTS = {".tif", ".tiff", ".gtiff", ".jp2", ".img", ".vrt", ".png", ".jpg", ".jpeg", ".ecw", ".sid",
               ".ntf", ".nitf", ".hdf", ".nc", ".dem", ".bil", ".kea", ".webp"}
LIST_EXTS = {".txt", ".lst", ".list"}
_SCHEMES = {"http://": "/vsicurl/", "https://": "/vsicurl/", "s3://": "/vsis3/", "gs://": "/vsigs/",
            "az://": "/vsiaz/"}


# ----------------------------------------------------------------------------------------------------- inputs
def gdal_name(text: str) -> str:
    """A path or URL as GDAL opens it (URLs -> /vsicurl/ etc.; /vsi names and local paths unchanged)."""
    for scheme, prefix in _SCHEMES.items():
        if text.lower().startswith(scheme):
            return prefix + (text if prefix == "/vsicurl/" else text[len(scheme):])
    return text


def _is_remote(text: str) -> bool:
    return text.startswith("/vsi") or any(text.lower().startswith(s) for s in _SCHEMES)


def _rasters_in(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in RASTER_EXTS:
                found.append(os.path.join(root, f))
    return found


def expand_inputs(inputs: Sequence, _depth: int = 0) -> list[str]:
    """Files, folders, globs and path lists -> the ordered, de-duplicated list of rasters (GDAL names)."""
    out: list[str] = []
    for item in inputs:
        item = os.fspath(item).strip() if not isinstance(item, str) else item.strip()
        if not item:
            continue
        if _is_remote(item):
            out.append(gdal_name(item))
        elif os.path.isdir(item):
            found = _rasters_in(item)
            if not found:
                raise InputError(f"folder {item} holds no rasters ({', '.join(sorted(RASTER_EXTS)[:4])}, ...); "
                                 f"give raster files, a glob or a list file")
            out.extend(found)
        elif os.path.isfile(item) and os.path.splitext(item)[1].lower() in LIST_EXTS:
            if _depth > 3:
                raise InputError(f"list file {item} nests other lists too deeply; list rasters directly")
            base = os.path.dirname(os.path.abspath(item))
            lines = []
            with open(item, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line or line.startswith("#"):
                        continue
                    if not _is_remote(line) and not os.path.isabs(line):
                        line = os.path.join(base, line)
                    lines.append(line)
            out.extend(expand_inputs(lines, _depth + 1))
        elif os.path.exists(item):
            out.append(item)
        elif glob.has_magic(item):
            found = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not found:
                raise InputError(f"no file matches {item}; check the pattern (quote it so the shell keeps it)")
            out.extend(found)
        else:
            raise InputError(f"input {item} not found; give raster files, folders, globs or a .txt list of paths")
    seen, uniq = set(), []
    for p in out:
        key = p if _is_remote(p) else os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            uniq.append(key)
    if not uniq and _depth == 0:
        raise InputError("no rasters given; name GeoTIFFs, folders, globs or a .txt list of paths")
    return uniq


def output_names(sources: Sequence[str]) -> list[str]:
    """One GeoPackage name per raster: its stem, plus a short hash of its path where stems collide."""
    def stem(s):
        base = s.rstrip("/").split("/")[-1].split("?")[0]
        st = os.path.splitext(base)[0] if os.path.splitext(base)[1].lower() in RASTER_EXTS | {".zip"} else base
        return re.sub(r"[^0-9A-Za-z._-]+", "_", st).strip("._") or "raster"
    stems = [stem(s) for s in sources]
    count: dict = {}
    for s in stems:
        count[s] = count.get(s, 0) + 1
    names = []
    for src, st in zip(sources, stems, strict=True):
        if count[st] > 1:
            st = f"{st}-{hashlib.sha1(src.encode()).hexdigest()[:8]}"
        names.append(st + ".gpkg")
    return names


# ----------------------------------------------------------------------------------------------- identity
def run_signature(queries, options: SegmentOptions, model_id: str, layer: str | None,
                  mode: str = "analyst") -> str:
    """What makes two runs' outputs interchangeable: queries, every engine option, model, Predictor mode and
    layer."""
    opts = {}
    for k, v in dataclasses.asdict(options).items():
        if k in ("temp_dir", "gdal_cache_mb", "prefetch", "in_memory_max_mb") or k.startswith("feature_cache"):
            continue  # how, not what
        if k == "mask_geometry" and v is not None:
            import shapely
            v = shapely.to_wkb(v, hex=True)
        opts[k] = list(v) if isinstance(v, tuple) else v
    what = {"queries": list(queries), "options": opts, "model": model_id, "layer": layer}
    if mode != "analyst":  # analyst runs keep the signature they had before modes existed (--resume still matches)
        what["mode"] = mode
    blob = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def clean_stale_partials(folder: str):
    """Remove temporary outputs left by a killed run (only those whose process is gone)."""
    for name in os.listdir(folder):
        m = re.match(r"^\..*\.(\d+)\.(partial\.gpkg|merging\.gpkg|tmp)$", name)
        if m and not _pid_alive(int(m.group(1))):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass


# -------------------------------------------------------------------------------------------- local executor
def _warm(source: str, options: SegmentOptions):
    """Read-ahead for the next raster: open and validate it and read its statistics (GDAL/OS caches)."""
    from .source import open_source

    try:
        open_source(source, options)
    except Exception:  # noqa: BLE001 - the real attempt reports it
        pass


def run_local(run: BatchRun, jobs: list, predictor, *, backoff: float = 1.0, quiet: bool = True,
              is_cancelled: Callable[[], bool] | None = None):
    """One model (``predictor``), rasters one after the other through segment_raster, the next one read ahead."""
    bars = None
    if not quiet:
        from tqdm import tqdm
        bars = (tqdm(total=len(jobs), unit="raster", desc="rasters", file=sys.stderr, position=0),
                tqdm(total=1000, desc="tiles", file=sys.stderr, position=1, leave=False,
                     bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}"))
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rs2sam2-readahead")
    warming = {}
    try:
        for k, job in enumerate(jobs):
            if k + 1 < len(jobs):
                nxt = jobs[k + 1]
                warming[nxt.index] = ahead.submit(_warm, nxt.source, run.options)
            w = warming.pop(job.index, None)
            if w is not None:
                w.result()  # never two threads on one raster's statistics
            if bars is not None:
                bars[0].set_postfix_str(os.path.basename(job.source), refresh=True)

            def progress(frac, msg):
                if bars is not None:
                    bars[1].n = int(round(frac * 1000))
                    bars[1].set_postfix_str(msg, refresh=False)
                    bars[1].refresh()

            while True:
                if is_cancelled is not None and is_cancelled():
                    raise Cancelled()
                try:
                    result = segment_raster(job.source, run.queries, predictor, run.options, progress=progress,
                                            is_cancelled=is_cancelled)
                    run.commit(job, result, worker=f"local:{os.getpid()}")
                    break
                except (KeyboardInterrupt, Cancelled):
                    raise
                except Exception as exc:  # noqa: BLE001 - a bad raster must not stop the batch
                    if not run.failed_attempt(job, exc):
                        break
                    time.sleep(backoff * job.attempts)
            if bars is not None:
                bars[0].update(1)
    finally:
        ahead.shutdown(wait=True, cancel_futures=True)
        if bars is not None:
            for b in bars:
                b.close()


# ---------------------------------------------------------------------------------------------------- merge
def merge_parts(run: BatchRun, out_path: str, crs=None) -> dict:
    """Merge the committed per-raster GeoPackages (input order) into ``out_path`` with a ``source`` column.

    One writer, atomically: a temporary GeoPackage beside ``out_path`` is filled layer by layer, part by part, and
    renamed over ``out_path`` at the end. Parts in another CRS than the target (``crs``, default: the first
    raster's) are reprojected; ``area_m2`` is geodesic already and stays as computed.
    """
    import numpy as np
    import pyogrio
    import shapely
    from pyproj import CRS, Transformer

    from .export import FIELDS

    done = [j for j in run.jobs if j.index in run.committed]
    folder = os.path.dirname(os.path.abspath(out_path))
    base = os.path.basename(out_path)
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.merging.gpkg")
    if os.path.exists(tmp):
        os.remove(tmp)
    target = CRS.from_user_input(crs) if crs else None
    created: set = set()
    reprojected = 0
    stats = {"parts": len(done), "features": 0}
    try:
        for job in done:
            part = os.path.join(run.folder, job.output)
            for name in [str(n) for n in pyogrio.list_layers(part)[:, 0]]:
                meta, _fids, geom, data = pyogrio.raw.read(part, layer=name)
                src_crs = CRS.from_user_input(meta["crs"]) if meta.get("crs") else None
                if target is None:
                    target = src_crs
                if src_crs is not None and target is not None and len(geom) and not src_crs.equals(target):
                    tr = Transformer.from_crs(src_crs, target, always_xy=True)
                    g = shapely.from_wkb(geom)
                    g = shapely.transform(g, lambda xy, tr=tr: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
                    geom = shapely.to_wkb(g)
                    reprojected += 1
                fields = [str(f) for f in meta["fields"]]
                cols = [data[fields.index(f)] if f in fields else np.full(len(geom), None, object) for f in FIELDS]
                cols.append(np.array([job.source] * len(geom), dtype=object))
                if len(geom) == 0 and name in created:
                    continue
                pyogrio.raw.write(tmp, np.asarray(geom, dtype=object), cols, FIELDS + ["source"], driver="GPKG",
                                  layer=name, geometry_type="MultiPolygon", promote_to_multi=True,
                                  crs=target.to_wkt() if target is not None else None, append=name in created)
                created.add(name)
                stats["features"] += len(geom)
        if not created:
            return {**stats, "written": False}
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    stats.update(written=True, layers=sorted(created), crs=target.to_string() if target is not None else None,
                 reprojected_layers=reprojected)
    return stats


# ----------------------------------------------------------------------------------------------- entry point
def model_id_of(model) -> str:
    """What names a model in the resume signature: a spec (a file with its size and time), or a callable's name."""
    if isinstance(model, str):
        if model == "demo" or not os.path.exists(model):
            return model
        return f"{os.path.abspath(model)}:{os.path.getsize(model)}:{os.path.getmtime(model)}"
    fn = getattr(model, "func", model)
    args = getattr(model, "args", ())
    kw = getattr(model, "keywords", {}) or {}
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}{args!r}{sorted(kw.items())!r}"


def run_batch(inputs, queries, out, model: ModelChoice | None = None, options: SegmentOptions | None = None, *,
              workers: int | None = None, ray: bool = False, ray_address: str | None = None,
              resume: bool = False, retries: int = 2, backoff: float = 1.0,
              layer: str | None = None, merged_crs=None, max_in_flight: int | None = None,
              threads: int | None = None, quiet: bool = True, on_result: Callable | None = None,
              on_start: Callable | None = None,
              is_cancelled: Callable[[], bool] | None = None, predictor=None) -> BatchSummary:
    """Segment every raster of ``inputs`` by ``queries``; see the module docstring. Returns a BatchSummary.

    ``model``: the ModelChoice (default: the demo model): its spec (demo, a preset, a checkpoint file, a release
    folder, py:module:callable with allow_code; or a picklable zero-argument callable returning a model), device,
    precision and Predictor mode ("analyst", or "authors": the authors' inference contract).
    ``on_result(run, job)`` is called after each commit, ``on_start(run, pool)`` once workers are up (tests use
    them to interrupt a run or kill a worker). ``threads``: torch threads per inference process (default: local,
    torch's own; Ray, the CPUs given to each actor). KeyboardInterrupt/Cancelled propagate after the bookkeeping is
    flushed; only complete outputs remain.
    """
    t_start = time.perf_counter()
    model = model or ModelChoice()
    options = (options or SegmentOptions()).validate()
    queries = clean_queries(queries)
    sources = expand_inputs([inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs))
    names = output_names(sources)
    out = os.fspath(out)
    merged = out.lower().endswith(".gpkg")
    if merged:
        folder = os.path.splitext(os.path.abspath(out))[0] + ".parts"
        from .export import check_output_path
        check_output_path(out)
    elif os.path.splitext(out)[1].lower() in (".geojson", ".json", ".shp"):
        raise InputError(f"batch output {out} must be a folder (one GeoPackage per raster) or a .gpkg (merged)")
    else:
        folder = os.path.abspath(out)
    os.makedirs(folder, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"output folder {folder} is not writable; choose another output")
    clean_stale_partials(folder)
    factory = model_factory(model)
    signature = run_signature(queries, options, model_id_of(model.spec), layer, model.mode)
    run = BatchRun(sources, names, queries, options, folder, signature, layer, retries, on_result=on_result)
    s = run.summary
    s.executor = "ray" if ray else "local"
    todo = run.pending(resume)
    try:
        if todo and not ray:
            t0 = time.perf_counter()
            if threads:
                import torch
                torch.set_num_threads(int(threads))
            if predictor is None:
                predictor = make_predictor(factory(), model.device, model.precision, model.mode)
            s.seconds_model_load = time.perf_counter() - t0
            s.device = str(predictor.device)
            s.workers = 1
            if on_start is not None:
                on_start(run, None)
            run_local(run, todo, predictor, backoff=backoff, quiet=quiet, is_cancelled=is_cancelled)
        elif todo:
            run_ray(run, todo, model, factory, workers=workers, address=ray_address, backoff=backoff, quiet=quiet,
                    max_in_flight=max_in_flight, threads=threads, on_start=on_start, is_cancelled=is_cancelled)
    except (KeyboardInterrupt, Cancelled):
        s.interrupted = True
        raise
    finally:
        s.failures_csv = write_failures(folder, run.failures)
        s.seconds_total = time.perf_counter() - t_start
        s.extra["driver_peak_rss_mb"] = peak_rss_mb()
    if merged:
        t0 = time.perf_counter()
        s.extra["merge"] = merge_parts(run, out, merged_crs)
        s.merged = out if s.extra["merge"].get("written") else None
        s.seconds_merge = time.perf_counter() - t0
        s.seconds_total = time.perf_counter() - t_start
    return s
