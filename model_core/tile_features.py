"""Encoded tiles as the Predictor hands them out (`Predictor.encode`) and takes them back (`Predictor.decode`).

`TileFeatures`: a dict of tensors with the batch first (on the predictor's device) + the tiles' own pixel size, and
what they are: "model" (a features-reusable model's `encode_images` output, worth caching) or "pixels" (the resized
pixels of a model whose image side depends on the text: decode runs the whole model).

`.split()` -> one TileFeatures per tile (own storage), `TileFeatures.cat(list)`, `.nbytes`, and a byte form for a
disk cache: `.to_bytes()` / `TileFeatures.from_bytes(data, device)` (torch.save of CPU tensors; loaded with
weights_only=True, so a cache file can never run code).
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence

import torch

__all__ = ["TileFeatures", "model_digest"]


class TileFeatures:
    def __init__(self, tensors: dict[str, torch.Tensor], size: tuple[int, int], kind: str = "model"):
        if not tensors:
            raise ValueError("TileFeatures needs at least one tensor")
        n = {int(t.shape[0]) for t in tensors.values()}
        if len(n) != 1:
            raise ValueError(f"feature tensors disagree on the batch size: {sorted(n)}")
        self.tensors = tensors
        self.size = (int(size[0]), int(size[1]))
        self.kind = kind

    def __len__(self) -> int:
        return int(next(iter(self.tensors.values())).shape[0])

    def __repr__(self):
        shapes = {k: tuple(v.shape) for k, v in self.tensors.items()}
        return f"TileFeatures(kind={self.kind!r}, size={self.size}, {shapes})"

    @property
    def nbytes(self) -> int:
        return int(sum(t.numel() * t.element_size() for t in self.tensors.values()))

    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device

    def split(self) -> list[TileFeatures]:
        return [TileFeatures({k: v[i:i + 1].clone() for k, v in self.tensors.items()}, self.size, self.kind)
                for i in range(len(self))]

    def select(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.index_select(0, index.to(v.device)) for k, v in self.tensors.items()}

    def to(self, device) -> TileFeatures:
        return TileFeatures({k: v.to(device) for k, v in self.tensors.items()}, self.size, self.kind)

    @staticmethod
    def cat(items: Sequence[TileFeatures]) -> TileFeatures:
        items = list(items)
        if not items:
            raise ValueError("no features given")
        if len(items) == 1:
            return items[0]
        first = items[0]
        for it in items[1:]:
            if it.size != first.size or it.kind != first.kind or set(it.tensors) != set(first.tensors):
                raise ValueError("features of different tile sizes, kinds or models cannot be decoded together")
        dev = first.device
        return TileFeatures({k: torch.cat([it.tensors[k].to(dev) for it in items]) for k in first.tensors},
                            first.size, first.kind)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save({"size": list(self.size), "kind": self.kind,
                    "tensors": {k: v.detach().to("cpu").contiguous() for k, v in self.tensors.items()}}, buf)
        return buf.getvalue()

    @staticmethod
    def from_bytes(data: bytes, device="cpu") -> TileFeatures:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        return TileFeatures({k: v.to(device) for k, v in obj["tensors"].items()}, tuple(obj["size"]), obj["kind"])


def model_digest(model, extra: str = "") -> str:
    """sha256 (hex, 32 chars) of a model's class, config and every state-dict tensor (names, dtypes, shapes, bytes):
    two models share a digest only if they compute the same features."""
    h = hashlib.sha256()
    h.update(type(model).__name__.encode())
    cfg = getattr(model, "cfg", None)
    if cfg is not None and hasattr(cfg, "to_dict"):
        import json

        h.update(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode())
    h.update(extra.encode())
    for k, v in model.state_dict().items():
        t = v.detach().to("cpu").contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}".encode())
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.update(t.numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]
