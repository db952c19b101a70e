"""The batch driver's bookkeeping: the jobs, the manifest of committed outputs, failures.csv and the summary.

Shared by the local executor (batch.py) and the Ray executor (batch_ray.py); ``BatchRun.commit`` is the only writer
of outputs (atomic write, sha256, then a manifest line), so a result is written once whoever computed it.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import resource
import time
from dataclasses import dataclass, field

from .export import write_vector
from .run import SegmentResult

MANIFEST = "manifest.jsonl"
FAILURES = "failures.csv"
FAILURE_FIELDS = ["source", "attempts", "error_type", "error", "failed_at"]


def sha256_of(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                return h.hexdigest()
            h.update(b)


def _utcnow() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Manifest:
    """``manifest.jsonl``: one line per committed output, appended (and fsync'ed) after its atomic rename."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, MANIFEST)
        self.entries: dict = {}
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        e = json.loads(line)
                        self.entries[e["source"]] = e
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut by a kill: ignored, that raster is redone

    def verified(self, source: str, output: str, signature: str) -> dict | None:
        e = self.entries.get(source)
        if not e or e.get("output") != output or e.get("signature") != signature:
            return None
        path = os.path.join(os.path.dirname(self.path), output)
        try:
            if os.path.getsize(path) != e.get("bytes") or sha256_of(path) != e.get("sha256"):
                return None
        except OSError:
            return None
        return e

    def append(self, entry: dict):
        line = json.dumps(entry, sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.entries[entry["source"]] = entry


def write_failures(folder: str, rows: list) -> str:
    """failures.csv in `folder` (written to a temporary name, then renamed); returns its path."""
    path = os.path.join(folder, FAILURES)
    tmp = os.path.join(folder, f".{FAILURES}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FAILURE_FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class Job:
    index: int
    source: str
    output: str               # file name in the parts/output folder
    attempts: int = 0         # attempts that raised
    lost: int = 0             # times its worker died under it
    last_error: BaseException | None = None


@dataclass
class RasterRecord:
    source: str
    output: str
    status: str               # "done", "skipped" (resume), "failed"
    polygons: int = 0
    megapixels: float = 0.0
    seconds: float = 0.0      # engine time (segment_raster) for this raster
    worker: str = ""
    error: str = ""


@dataclass
class BatchSummary:
    rasters: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    polygons: int = 0
    megapixels: float = 0.0
    seconds_total: float = 0.0       # wall, whole run
    seconds_model_load: float = 0.0  # wall, model(s) loaded (Ray: cluster + actors ready)
    seconds_engine: float = 0.0      # sum of per-raster engine time
    seconds_write: float = 0.0       # per-raster commits (write_vector + sha256 + rename + manifest)
    seconds_merge: float = 0.0
    out_dir: str = ""
    merged: str | None = None
    failures_csv: str = ""
    executor: str = "local"
    workers: int = 1
    device: str = ""
    actors_replaced: int = 0
    redone_after_worker_loss: int = 0
    interrupted: bool = False
    records: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def seconds_per_megapixel(self) -> float:
        run = self.seconds_total - self.seconds_model_load
        return run / self.megapixels if self.megapixels else float("nan")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["seconds_per_megapixel"] = self.seconds_per_megapixel
        return d


class BatchRun:
    """The driver's state: jobs, manifest, failures; commits results (the only writer)."""

    def __init__(self, sources, names, queries, options, folder, signature, layer, retries, on_result=None):
        self.jobs = [Job(i, s, n) for i, (s, n) in enumerate(zip(sources, names, strict=True))]
        self.queries = queries
        self.options = options
        self.folder = folder
        self.signature = signature
        self.layer = layer
        self.retries = max(0, int(retries))
        self.manifest = Manifest(folder)
        self.failures: list = []
        self.summary = BatchSummary(rasters=len(self.jobs), out_dir=folder)
        self.on_result = on_result
        self.committed: set = set()

    def pending(self, resume: bool) -> list:
        todo = []
        for job in self.jobs:
            e = self.manifest.verified(job.source, job.output, self.signature) if resume else None
            if e is not None:
                self.summary.skipped += 1
                self.summary.polygons += int(e.get("polygons", 0))
                self.summary.records.append(RasterRecord(job.source, job.output, "skipped",
                                                         polygons=int(e.get("polygons", 0))))
                self.committed.add(job.index)
            else:
                todo.append(job)
        return todo

    def commit(self, job: Job, result: SegmentResult, worker: str = "", seconds: float | None = None):
        """Write ``result`` as ``job.output`` atomically, then record it in the manifest. Once per job."""
        if job.index in self.committed:
            return False  # a duplicate (e.g. a replaced worker's late answer): never written twice
        t0 = time.perf_counter()
        final = os.path.join(self.folder, job.output)
        tmp = os.path.join(self.folder, f".{job.output}.{os.getpid()}.partial.gpkg")
        try:
            if os.path.exists(tmp):
                os.remove(tmp)
            write_vector(result, tmp, layer=self.layer)
            digest, size = sha256_of(tmp), os.path.getsize(tmp)
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        st = result.stats
        self.manifest.append({"source": job.source, "output": job.output, "sha256": digest, "bytes": size,
                              "signature": self.signature, "polygons": result.count, "crs_wkt": result.crs_wkt,
                              "layers": None, "megapixels": st.megapixels, "seconds": st.seconds_total,
                              "finished_at": _utcnow()})
        self.committed.add(job.index)
        s = self.summary
        s.seconds_write += time.perf_counter() - t0
        s.done += 1
        s.polygons += result.count
        s.megapixels += st.megapixels
        s.seconds_engine += st.seconds_total if seconds is None else seconds
        s.records.append(RasterRecord(job.source, job.output, "done", polygons=result.count,
                                      megapixels=st.megapixels, seconds=st.seconds_total, worker=worker))
        if self.on_result is not None:
            self.on_result(self, job)
        return True

    def failed_attempt(self, job: Job, exc: BaseException) -> bool:
        """Count a failed attempt; True when the job should be retried, False when it is now recorded as failed."""
        job.attempts += 1
        job.last_error = exc
        if job.attempts <= self.retries:
            return True
        self.record_failure(job, exc)
        return False

    def record_failure(self, job: Job, exc: BaseException):
        msg = " ".join(str(exc).split()) or type(exc).__name__
        self.failures.append({"source": job.source, "attempts": job.attempts, "error_type": type(exc).__name__,
                              "error": msg, "failed_at": _utcnow()})
        self.summary.failed += 1
        self.summary.records.append(RasterRecord(job.source, job.output, "failed", error=msg))
        self.summary.failures_csv = write_failures(self.folder, self.failures)
