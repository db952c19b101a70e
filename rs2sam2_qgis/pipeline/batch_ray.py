"""rs2sam2 batch on Ray: a pool of inference actors, each with one model, fed whole rasters by the driver.

Why plain actors and not Ray Data (see bench/results/batch_scaling.md for the measurement): the engine's unit of
work is a whole raster (tiles read in order, a rolling stitch buffer, polygonize), which is stateful per raster and
not a row-wise map; Ray Data would either ship every tile and probability map through the object store (a 2048 px
raster at 256 px tiles and one query is ~40 MB of float32 probabilities) and re-group them per raster, or wrap
``segment_raster`` in one ``map_batches`` call per raster, which is this design plus a streaming executor, Arrow
blocks and pyarrow/pandas in QGIS's Python. Actors keep ``segment_raster`` + ``write_vector`` the one engine.

Each actor:
  * loads the model once (``num_gpus`` = 1 or a share when the cluster has GPUs, CPU threads otherwise);
  * runs ``segment_raster`` for two rasters at a time (``max_concurrency=2``): tile reading (the engine's reader
    thread), stitching and polygonizing of one raster overlap the other's inference; a lock keeps one forward pass
    at a time on the model, so GPU memory is that of one batch.
The driver:
  * keeps at most ``max_in_flight`` (default 2 per actor) rasters submitted, so memory stays bounded whatever
    the number of rasters (only paths go out; only polygons come back);
  * commits results itself (``BatchRun.commit``: atomic write, checksum, manifest) - one writer, no duplicates;
  * on an actor death (killed, OOM, node lost) replaces the actor and resubmits that actor's rasters; a raster that
    raises is retried ``retries`` times, then recorded in failures.csv.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

from .batch_state import BatchRun, peak_rss_mb
from .errors import Cancelled, InputError
from .predictors import make_predictor
from .request import ModelChoice
from .run import segment_raster

MAX_LOST_PER_RASTER = 3


class SerialPredictor:
    """A Predictor whose ``predict`` runs one call at a time (two rasters share one model in an actor)."""

    def __init__(self, predictor):
        self._p = predictor
        self._lock = threading.Lock()
        self.seconds_waiting = 0.0

    def predict(self, images, texts, batch_size=None):
        t0 = time.perf_counter()
        with self._lock:
            self.seconds_waiting += time.perf_counter() - t0
            return self._p.predict(images, texts, batch_size)

    __call__ = predict

    def __getattr__(self, name):
        return getattr(self._p, name)


class InferenceActor:
    """One model, whole rasters through ``segment_raster``. Made a Ray actor by ``ray.remote`` in ``_pool``."""

    def __init__(self, factory: Callable, choice: ModelChoice, threads: int | None):
        """`factory`: predictors.model_factory(choice), made by the driver (what it resolves there is shipped)."""
        t0 = time.perf_counter()
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.predictor = SerialPredictor(make_predictor(factory(), choice.device, choice.precision, choice.mode))
        self.load_seconds = time.perf_counter() - t0
        self.threads = torch.get_num_threads()

    def ready(self) -> dict:
        p = self.predictor
        return {"pid": os.getpid(), "device": str(p.device), "device_reason": p.device_reason,
                "precision": p.precision, "mode": p.mode, "model": p.model_name, "load_seconds": self.load_seconds,
                "torch_threads": self.threads}

    def segment(self, source: str, queries, options):
        started = time.time()
        result = segment_raster(source, queries, self.predictor, options)
        finished = time.time()
        return result, {"pid": os.getpid(), "started": started, "finished": finished,
                        "peak_rss_mb": peak_rss_mb()}


def _local_pythonpath():
    """Workers of a cluster started here import what the driver imports (tests, bench scripts)."""
    dirs = [p for p in sys.path if p and os.path.isdir(p)]
    old = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(dirs + ([old] if old else []))
    return old


def init_local_ray(**kwargs):
    """``ray.init(**kwargs)`` for a cluster started here, its workers seeing the driver's sys.path."""
    import ray

    kw = dict(include_dashboard=False, log_to_driver=True, logging_level="WARNING")
    kw.update(kwargs)
    old = _local_pythonpath()
    try:
        return ray.init(**kw)
    finally:
        if old:
            os.environ["PYTHONPATH"] = old
        else:
            os.environ.pop("PYTHONPATH", None)


def _is_worker_loss(exc) -> bool:
    import ray.exceptions as rx

    kinds = tuple(k for k in (getattr(rx, n, None) for n in ("RayActorError", "ActorDiedError",
                                                            "ActorUnavailableError", "WorkerCrashedError",
                                                            "ObjectLostError", "OwnerDiedError",
                                                            "NodeDiedError")) if k is not None)
    return isinstance(exc, kinds)


class ActorPool:
    """Slots of inference actors; a dead actor is replaced in its slot (bounded number of replacements)."""

    def __init__(self, ray, cls, args, opts: dict, n: int, max_replacements: int):
        self.ray = ray
        self.cls = cls.options(**opts)
        self.args = args
        self.actors = [self.cls.remote(*args) for _ in range(n)]
        self.load = {a._actor_id: 0 for a in self.actors}
        self.replaced = 0
        self.max_replacements = max_replacements
        self.info: dict = {}

    def wait_ready(self):
        infos = self.ray.get([a.ready.remote() for a in self.actors])
        for a, info in zip(self.actors, infos, strict=True):
            self.info[a._actor_id.hex()] = info
        return infos

    def pick(self) -> int:
        return min(range(len(self.actors)), key=lambda i: self.load.get(self.actors[i]._actor_id, 0))

    def replace(self, dead, cause) -> bool:
        """Replace ``dead`` if it is still in a slot; False when it was replaced already."""
        for i, a in enumerate(self.actors):
            if a._actor_id == dead._actor_id:
                if self.replaced >= self.max_replacements:
                    raise RuntimeError(f"inference actors keep dying ({self.replaced} replaced); last cause: "
                                       f"{' '.join(str(cause).split())[:300]}")
                self.actors[i] = self.cls.remote(*self.args)
                self.load[self.actors[i]._actor_id] = 0
                self.replaced += 1
                return True
        return False

    def shutdown(self):
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:  # noqa: BLE001
                pass


def run_ray(run: BatchRun, jobs: list, choice: ModelChoice, factory: Callable, *, workers: int | None = None,
            address: str | None = None, backoff: float = 1.0, quiet: bool = True,
            max_in_flight: int | None = None, threads: int | None = None, on_start: Callable | None = None,
            is_cancelled: Callable[[], bool] | None = None):
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray; install the extra: pip install 'rs2sam2[ray]' (ray==2.60.0), or run "
                         "without --ray") from None
    s = run.summary
    t0 = time.perf_counter()
    started_here = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level="WARNING")
        else:
            init_local_ray()
        started_here = True
    pool = None
    try:
        res = ray.cluster_resources()
        gpus, cpus = float(res.get("GPU", 0)), float(res.get("CPU", 1))
        device = choice.device
        if device.startswith("cuda") and gpus <= 0:
            raise InputError("--device cuda asked but the Ray cluster has no GPU; use --device auto or cpu")
        use_gpu = gpus > 0 and (device == "auto" or device.startswith("cuda"))
        n = int(workers or (max(1, int(gpus)) if use_gpu else 1))
        if n < 1:
            raise InputError("--workers must be >= 1")
        if use_gpu:
            share = gpus / n
            opts = {"num_gpus": share if share < 1 else 1, "num_cpus": 1}
            actor_device = "cuda" if device == "auto" else device
        else:
            share = cpus / n
            per = float(int(share)) if share >= 1 else share
            opts = {"num_cpus": per}
            actor_device, threads = ("cpu" if device == "auto" else device), threads or max(1, int(per))
        cls = ray.remote(InferenceActor)
        pool = ActorPool(ray, cls, (factory, dataclasses.replace(choice, device=actor_device), threads),
                         dict(opts, max_concurrency=2, max_restarts=0), n, max_replacements=3 * n + 3)
        try:
            infos = pool.wait_ready()
        except Exception as exc:  # noqa: BLE001 - a model that cannot load on the workers
            cause = getattr(exc, "cause", None) or exc
            if isinstance(cause, InputError):
                raise cause from None
            raise InputError(f"the inference actors could not start: {' '.join(str(cause).split())[:400]}") \
                from None
        s.seconds_model_load = time.perf_counter() - t0
        s.workers = n
        s.device = infos[0]["device"] if infos else ""
        s.extra["ray"] = {"address": address or "local", "cluster_resources": {k: v for k, v in res.items()
                                                                               if k in ("CPU", "GPU", "memory")},
                          "actor_options": opts, "actors": infos}
        if on_start is not None:
            on_start(run, pool)
        _drive(ray, run, jobs, pool, cap=int(max_in_flight or 2 * n), backoff=backoff, quiet=quiet,
               is_cancelled=is_cancelled)
        s.actors_replaced = pool.replaced
    finally:
        if pool is not None:
            s.actors_replaced = pool.replaced
            pool.shutdown()
        if started_here:
            ray.shutdown()


def _drive(ray, run: BatchRun, jobs: list, pool: ActorPool, cap: int, backoff: float, quiet: bool,
           is_cancelled):
    s = run.summary
    pending = deque(jobs)
    retry_at: dict = {}
    inflight: dict = {}       # ObjectRef -> (job, actor, submitted)
    timings = []
    actor_peak: dict = {}
    queries_ref, options_ref = ray.put(run.queries), ray.put(run.options)
    bar = None
    if not quiet:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), unit="raster", desc=f"rasters ({len(pool.actors)} actor(s))", file=sys.stderr)
    try:
        while pending or inflight:
            if is_cancelled is not None and is_cancelled():
                raise Cancelled()
            now = time.monotonic()
            for _ in range(len(pending)):
                if len(inflight) >= cap:
                    break
                job = pending.popleft()
                if retry_at.get(job.index, 0) > now:
                    pending.append(job)
                    continue
                actor = pool.actors[pool.pick()]
                ref = actor.segment.remote(job.source, queries_ref, options_ref)
                inflight[ref] = (job, actor, time.time())
                pool.load[actor._actor_id] = pool.load.get(actor._actor_id, 0) + 1
            if not inflight:
                time.sleep(0.05)
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in ready:
                job, actor, submitted = inflight.pop(ref)
                pool.load[actor._actor_id] = pool.load.get(actor._actor_id, 1) - 1
                try:
                    result, info = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - sorted below
                    if _is_worker_loss(exc):
                        pool.replace(actor, exc)
                        job.lost += 1
                        s.redone_after_worker_loss += 1
                        if job.lost > MAX_LOST_PER_RASTER:
                            run.record_failure(job, RuntimeError(f"its worker died {job.lost} times: {exc}"))
                            if bar is not None:
                                bar.update(1)
                        else:
                            pending.appendleft(job)
                        continue
                    cause = getattr(exc, "cause", None) or exc
                    if isinstance(cause, (KeyboardInterrupt, Cancelled)):
                        raise cause from None
                    if run.failed_attempt(job, cause):
                        retry_at[job.index] = time.monotonic() + backoff * job.attempts
                        pending.append(job)
                    elif bar is not None:
                        bar.update(1)
                    continue
                received = time.time()
                if run.commit(job, result, worker=f"ray:{info['pid']}"):
                    timings.append({"source": os.path.basename(job.source), "pid": info["pid"],
                                    "submitted": submitted, "started": info["started"],
                                    "finished": info["finished"], "received": received,
                                    "engine_seconds": result.stats.seconds_total})
                    actor_peak[info["pid"]] = max(actor_peak.get(info["pid"], 0.0), info["peak_rss_mb"])
                if bar is not None:
                    bar.update(1)
    except BaseException:
        for ref in inflight:
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001
                pass
        raise
    finally:
        if bar is not None:
            bar.close()
        s.extra.setdefault("ray", {})
        s.extra["ray"]["timings"] = timings
        s.extra["ray"]["actor_peak_rss_mb"] = actor_peak
