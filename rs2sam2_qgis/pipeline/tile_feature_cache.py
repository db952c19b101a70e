"""Per-tile feature cache for models whose image features do not depend on the text (RSRefSeg).

No torch import here: the cached objects are the predictor's opaque per-tile features (`predictor.encode(...)
.split()` items with `.nbytes` and `.to_bytes()`; `predictor.features_from_bytes(data)` rebuilds one).

- Memory: an LRU dict bounded in bytes (`memory_mb`), oldest evicted.
- Disk (optional, `disk_dir`): one file per tile, `<dir>/<key[:2]>/<key>.feat` = MAGIC | sha256(payload) | payload
  length | key | payload. Written to a unique temporary name in the same folder and renamed over the target
  (atomic: two runs sharing the folder never see half a file). A read checks magic, key, length and checksum; a
  file that fails (truncated, corrupt, stale format) or does not decode is deleted and recomputed, never trusted.
  Bounded (`disk_max_mb`): when the folder grows past it, the files used longest ago (mtime, refreshed on every
  hit) are deleted.
- Key (`tile_key`): sha256 over the raster path, size and mtime, the window, band mapping, stretch/resampling,
  the tile's own pixels and the model digest (weights, config, precision, device type).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

MAGIC = b"RS2FEAT1"
_HEADER = struct.Struct("<8s32sQ64s")  # magic, sha256(payload), payload length, key (hex)


@dataclass
class CacheStats:
    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    encoded: int = 0        # tiles run through predictor.encode
    disk_writes: int = 0
    disk_rejected: int = 0  # corrupt / truncated / undecodable files recomputed
    disk_evicted: int = 0

    def as_dict(self):
        return dict(self.__dict__)


class FeatureCache:
    def __init__(self, memory_mb: float = 512.0, disk_dir=None, disk_max_mb: float = 4096.0):
        self.memory_max = int(max(0.0, float(memory_mb)) * 2**20)
        self.disk_dir = Path(disk_dir).expanduser() if disk_dir else None
        self.disk_max = int(max(0.0, float(disk_max_mb)) * 2**20)
        self._mem: "OrderedDict[str, tuple]" = OrderedDict()
        self._mem_bytes = 0
        self._disk_bytes: Optional[int] = None  # this process's running estimate; rescanned before evicting
        self.stats = CacheStats()
        if self.disk_dir is not None:
            self.disk_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ memory
    def _mem_get(self, key):
        item = self._mem.get(key)
        if item is None:
            return None
        self._mem.move_to_end(key)
        return item[0]

    def _mem_put(self, key, feats):
        n = int(getattr(feats, "nbytes", 0))
        if n > self.memory_max:
            return
        old = self._mem.pop(key, None)
        if old is not None:
            self._mem_bytes -= old[1]
        self._mem[key] = (feats, n)
        self._mem_bytes += n
        while self._mem_bytes > self.memory_max and self._mem:
            _, (_, m) = self._mem.popitem(last=False)
            self._mem_bytes -= m

    @property
    def memory_bytes(self) -> int:
        return self._mem_bytes

    def __len__(self):
        return len(self._mem)

    # ------------------------------------------------------------------ disk
    def path_for(self, key: str) -> Path:
        return self.disk_dir / key[:2] / f"{key}.feat"

    def _disk_get(self, key, from_bytes):
        p = self.path_for(key)
        try:
            data = p.read_bytes()
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return None
        feats = None
        if len(data) >= _HEADER.size:
            magic, digest, length, k = _HEADER.unpack_from(data)
            payload = data[_HEADER.size:]
            if (magic == MAGIC and k.decode("ascii", "replace") == key and length == len(payload)
                    and hashlib.sha256(payload).digest() == digest):
                try:
                    feats = from_bytes(payload)
                except Exception:  # noqa: BLE001  (undecodable: treat as corrupt)
                    feats = None
        if feats is None:
            self.stats.disk_rejected += 1
            try:
                p.unlink()
            except OSError:
                pass
            return None
        try:
            os.utime(p)  # recently used: evicted last
        except OSError:
            pass
        return feats

    def _disk_put(self, key, payload: bytes):
        p = self.path_for(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        header = _HEADER.pack(MAGIC, hashlib.sha256(payload).digest(), len(payload), key.encode("ascii"))
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(header)
                f.write(payload)
            os.replace(tmp, p)
        except OSError:
            try:
                tmp.unlink()
            except OSError:
                pass
            return
        self.stats.disk_writes += 1
        if self._disk_bytes is None:
            self._disk_bytes = self._scan_bytes()
        else:
            self._disk_bytes += len(header) + len(payload)
        if self._disk_bytes > self.disk_max:
            self._evict_disk()

    def _entries(self):
        out = []
        for sub in self.disk_dir.iterdir() if self.disk_dir.is_dir() else []:
            if not sub.is_dir():
                continue
            for f in sub.iterdir():
                if f.suffix == ".feat":
                    try:
                        st = f.stat()
                    except OSError:
                        continue
                    out.append((st.st_mtime_ns, st.st_size, f))
        return out

    def _scan_bytes(self) -> int:
        return sum(s for _, s, _ in self._entries())

    def _evict_disk(self):
        entries = sorted(self._entries())
        total = sum(s for _, s, _ in entries)
        for _, size, f in entries:
            if total <= self.disk_max:
                break
            try:
                f.unlink()
                self.stats.disk_evicted += 1
            except OSError:
                pass
            total -= size
        self._disk_bytes = max(0, total)

    # ------------------------------------------------------------------ API
    def get(self, key: str, from_bytes=None):
        feats = self._mem_get(key)
        if feats is not None:
            self.stats.memory_hits += 1
            return feats
        if self.disk_dir is not None and from_bytes is not None:
            feats = self._disk_get(key, from_bytes)
            if feats is not None:
                self.stats.disk_hits += 1
                self._mem_put(key, feats)
                return feats
        self.stats.misses += 1
        return None

    def put(self, key: str, feats):
        self._mem_put(key, feats)
        if self.disk_dir is not None:
            self._disk_put(key, feats.to_bytes())


# ---------------------------------------------------------------------------------------------------- keys
def source_fingerprint(src, options, tile: int, model_digest: str) -> dict:
    """Everything about a run that decides a tile's pixels and features, except the window and the pixels."""
    p = Path(src.path)
    try:
        st = os.stat(p)
        size, mtime = st.st_size, st.st_mtime_ns
    except OSError:  # not a local file (e.g. /vsicurl/): the pixel digest still guards the key
        size, mtime = None, None
    return {
        "raster": str(p.resolve()) if size is not None else str(src.path), "size": size, "mtime_ns": mtime,
        "shape": [src.width, src.height, src.count], "dtype": src.dtype, "bands": list(src.bands),
        "alpha": src.alpha, "stretch": [list(map(float, s)) for s in src.stretch] if src.stretch else None,
        "scale": float(src.scale), "nodata": None if src.nodata is None else float(src.nodata),
        "stretch_per_band": bool(options.stretch_per_band), "tile": int(tile), "model": model_digest,
    }


def tile_key(fingerprint: dict, window, rgb: np.ndarray) -> str:
    """window = (row, col, height, width) in grid pixels; rgb = the tile's uint8 pixels as read."""
    h = hashlib.sha256()
    h.update(json.dumps(fingerprint, sort_keys=True, default=str).encode())
    h.update(json.dumps([int(v) for v in window]).encode())
    h.update(str(rgb.shape).encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


def predict_cached(predictor, cache: FeatureCache, keys: Sequence[str], tiles: np.ndarray, queries,
                   batch_size: int | None = None, presence: bool = False):
    """predictor.decode over the tiles' features, encoding only the tiles the cache does not hold (``presence``: as
    Predictor.predict)."""
    feats = [cache.get(k, predictor.features_from_bytes) for k in keys]
    miss = [i for i, f in enumerate(feats) if f is None]
    if miss:
        enc = predictor.encode(np.stack([tiles[i] for i in miss]), batch_size).split()
        cache.stats.encoded += len(miss)
        for i, f in zip(miss, enc):
            feats[i] = f
            cache.put(keys[i], f)
    if presence:
        return predictor.decode(feats, queries, batch_size, presence=True)
    return predictor.decode(feats, queries, batch_size)


def cache_usable(predictor) -> bool:
    return bool(getattr(predictor, "features_reusable", False)) and all(
        hasattr(predictor, a) for a in ("encode", "decode", "features_from_bytes", "model_digest"))

