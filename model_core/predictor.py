"""Predictor: numpy uint8 tiles + text queries -> per-tile probability maps.

Family-agnostic: it uses only the segmentation-model protocol (docs/ARCHITECTURE.md):
``model.input_size``, ``model.name``, ``model.predict_masks(pixels[N,3,S,S] in [0,1], texts[N]) -> logits[N,1,h,w]``
and, when present, ``model.logits_to_prob(logits)`` (otherwise sigmoid).

Every image is paired with every text; the pairs are run in batches of ``batch_size`` pairs. Tiles are resized to
``input_size`` (bilinear, antialiased when shrinking) and the logits back to each tile's own size before the
probability is taken, so the caller gets probabilities at the pixels it gave.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .precision import resolve_precision

__all__ = ["Predictor", "resolve_device"]


def resolve_device(device: str | torch.device | None = "auto") -> tuple[torch.device, str]:
    """The device to run on and a one-line reason (shown to the analyst: "is my GPU used?")."""
    if isinstance(device, torch.device):
        device = str(device)
    device = (device or "auto").strip().lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda"), f"CUDA available ({torch.cuda.get_device_name(0)})"
        if torch.version.cuda is None:
            why = "this torch build has no CUDA support"
        else:
            why = "no CUDA device visible to torch (driver missing or CUDA_VISIBLE_DEVICES empty)"
        return torch.device("cpu"), f"CPU: {why}"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA device visible"
            raise RuntimeError(f"device '{device}' requested but {why}; use --device cpu or auto")
        dev = torch.device(device)
        return dev, f"CUDA requested ({torch.cuda.get_device_name(dev)})"
    if device == "cpu":
        return torch.device("cpu"), "CPU requested"
    if device == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise RuntimeError("device 'mps' requested but MPS is not available; use cpu or auto")
        return torch.device("mps"), "MPS requested"
    raise ValueError(f"unknown device '{device}': use auto, cpu or cuda")


class Predictor:
    """Runs a model that follows the segmentation-model protocol on numpy tiles.

    ``predict(images, texts)`` -> float32 ``[B, T, H, W]`` in [0, 1].
    """

    def __init__(self, model: torch.nn.Module, device="auto", precision: str = "auto",
                 batch_size: int | None = None, mode: str = "analyst"):
        # mode "analyst" (default): probabilities at each tile's own size. "authors": the RS2-SAM2 authors' contract
        # (PIL bilinear to the model's two sizes, fp32, one caption per forward, 0/1 mask where logit > 0.5 at
        # their 1024 grid; model_core/authors_mode.py). This is the one place that decides.
        from .authors_mode import MODES, check_model

        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: use {' or '.join(MODES)}")
        if mode == "authors":
            check_model(model)
            if (precision or "auto").strip().lower() == "auto":
                precision = "fp32"  # their test.sh runs fp32
        self.mode = mode
        for attr in ("input_size", "name", "predict_masks"):
            if not hasattr(model, attr):
                raise TypeError(f"model {type(model).__name__} lacks '{attr}' (see the model protocol)")
        self.device, self.device_reason = resolve_device(device)
        # precision_reason: why this precision (auto: native bf16 CPU + the model's measured declaration)
        self.dtype, self.precision, self.precision_reason = resolve_precision(precision, self.device, model)
        self.model = model.to(self.device).eval()
        self.input_size = int(model.input_size)
        self.model_name = str(model.name)
        # the model's calibrated presence decision (whole-extent referring), 0.5 when it has none
        self.presence_threshold = float(getattr(model, "presence_threshold", 0.5))
        if batch_size is None:
            batch_size = 8 if self.device.type == "cuda" else 4
        self.batch_size = max(1, int(batch_size))

    def __repr__(self):
        return (f"Predictor(model={self.model_name!r}, device={str(self.device)!r}, precision={self.precision!r}, "
                f"input_size={self.input_size})")

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _as_batch(images) -> np.ndarray:
        if isinstance(images, np.ndarray):
            arr = images
            if arr.ndim == 3:
                arr = arr[None]
        else:
            images = list(images)
            if not images:
                raise ValueError("no images given")
            shapes = {np.asarray(im).shape for im in images}
            if len(shapes) != 1:
                raise ValueError(f"images must share one size, got {sorted(shapes)}")
            arr = np.stack([np.asarray(im) for im in images])
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"images must be [B,H,W,3] (RGB), got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {arr.dtype}")
        return arr

    @staticmethod
    def _as_texts(texts) -> list[str]:
        """One query or a sequence of queries -> a non-empty list of strings."""
        texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
        if not texts:
            raise ValueError("no texts given")
        return texts

    def _autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _to_prob(self, logits: torch.Tensor) -> torch.Tensor:
        fn = getattr(self.model, "logits_to_prob", None)
        return fn(logits) if callable(fn) else logits.sigmoid_()

    # ------------------------------------------------------------------ split prediction (encode once, decode per text)
    @property
    def features_reusable(self) -> bool:
        """True when the model's image features do not depend on the text (model.features_reusable with
        encode_images/decode_features): encode a tile once, decode it for any number of queries, cache it."""
        m = self.model
        if getattr(self, "mode", "analyst") == "authors":  # their contract runs the whole model per caption
            return False
        return bool(getattr(m, "features_reusable", False)) and hasattr(m, "encode_images") \
            and hasattr(m, "decode_features")

    def model_digest(self) -> str:
        """Identifies what encode() computes (model class, config, weights, precision, device type); cached."""
        if getattr(self, "_digest", None) is None:
            from .tile_features import model_digest

            self._digest = model_digest(self.model, f"{self.precision}|{self.device.type}|{self.input_size}")
        return self._digest

    def _pixels01(self, arr: np.ndarray) -> torch.Tensor:
        """uint8 [n,H,W,3] -> float [n,3,S,S] in [0,1] on the device (same resize as predict)."""
        n, h, w, _ = arr.shape
        s = self.input_size
        px = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device).permute(0, 3, 1, 2)
        if (h, w) != (s, s) and self.device.type == "cpu":
            px = F.interpolate(px, size=(s, s), mode="bilinear", align_corners=False, antialias=(h > s or w > s))
            return px.float().div_(255.0)
        px = px.float().div_(255.0)
        if (h, w) != (s, s):
            px = F.interpolate(px, size=(s, s), mode="bilinear", align_corners=False, antialias=(h > s or w > s))
        return px.contiguous()

    def encode(self, images, batch_size: int | None = None):
        """Images (uint8 [B,H,W,3]) -> TileFeatures (model_core.tile_features): a reusable model's text-independent
        features, or the resized pixels for a model whose image side depends on the text."""
        from .tile_features import TileFeatures

        arr = self._as_batch(images)
        n_img, h, w, _ = arr.shape
        bs = max(1, int(batch_size or self.batch_size))
        parts = []
        with torch.inference_mode():
            for start in range(0, n_img, bs):
                px = self._pixels01(arr[start:start + bs])
                if self.features_reusable:
                    with self._autocast():
                        feats = self.model.encode_images(px)
                    parts.append(TileFeatures(dict(feats), (h, w), "model"))
                else:
                    parts.append(TileFeatures({"pixels": px}, (h, w), "pixels"))
        return TileFeatures.cat(parts)

    def features_from_bytes(self, data: bytes):
        from .tile_features import TileFeatures

        return TileFeatures.from_bytes(data, self.device)

    def decode(self, features, texts: str | Sequence[str], batch_size: int | None = None,
               presence: bool = False):
        """TileFeatures (or a list of them, one size) + texts -> probabilities [B, T, H, W] like predict (with
        ``presence``: and the presence [B, T], as predict)."""
        from .tile_features import TileFeatures

        feats = TileFeatures.cat(features) if isinstance(features, (list, tuple)) else features
        texts = self._as_texts(texts)
        n_img, n_txt = len(feats), len(texts)
        h, w = feats.size
        bs = max(1, int(batch_size or self.batch_size))
        out = np.empty((n_img, n_txt, h, w), dtype=np.float32)
        pres = np.empty((n_img, n_txt), dtype=np.float32)
        pairs = [(i, j) for i in range(n_img) for j in range(n_txt)]
        # a family that can reuse text encodings (RSRefSeg) encodes each distinct text once per call
        kw = {"text_cache": {}} if getattr(self.model, "decode_text_cache", False) else {}
        with torch.inference_mode():
            for start in range(0, len(pairs), bs):
                chunk = pairs[start:start + bs]
                sel = torch.tensor([i for i, _ in chunk], device=feats.device)
                f = feats.select(sel)
                chunk_texts = [texts[j] for _, j in chunk]
                with self._autocast():
                    if feats.kind == "pixels":
                        logits, tile_presence = self._forward_pixels(f["pixels"], chunk_texts)
                    else:
                        res = self.model.decode_features(f, chunk_texts, **kw)
                        logits = res["logits"] if isinstance(res, dict) else res
                        tile_presence = res.get("presence") if isinstance(res, dict) else None
                self._store(out, chunk, logits, pres, tile_presence)
        return (out, pres) if presence else out

    def _forward_pixels(self, pixels: torch.Tensor, texts: list[str]):
        """(logits, presence or None) from a model's pixel path; a family that computes presence itself
        (``predict_masks_and_presence``) gives it, else the caller derives it from the mask."""
        fn = getattr(self.model, "predict_masks_and_presence", None)
        if callable(fn):
            return fn(pixels, texts)
        return self.model.predict_masks(pixels, texts), None

    def _store(self, out: np.ndarray, chunk, logits: torch.Tensor, pres: np.ndarray,
               presence: torch.Tensor | None = None) -> None:
        """Logits of a chunk of (image, text) pairs -> probabilities at the images' size, into out[i, j], and each
        pair's presence (the model's own, else the mask's highest probability) into pres[i, j]."""
        h, w = out.shape[-2:]
        if logits.ndim == 3:
            logits = logits[:, None]
        logits = logits.float()
        if tuple(logits.shape[-2:]) != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        prob = self._to_prob(logits).float().clamp_(0.0, 1.0)[:, 0]
        if presence is None:
            presence = prob.flatten(1).amax(1)
        presence = presence.float().reshape(-1).cpu().numpy()
        prob = prob.cpu().numpy()
        for k, (i, j) in enumerate(chunk):
            out[i, j] = prob[k]
            pres[i, j] = presence[k]

    # ------------------------------------------------------------------ API
    def predict(self, images, texts: str | Sequence[str], batch_size: int | None = None,
                presence: bool = False):
        """Probabilities ``[B, T, H, W]`` (float32, [0, 1]) for every (image, text) pair (mode "authors": their 0/1
        mask, see model_core/authors_mode.py).

        ``presence=True`` returns ``(probabilities, presence)``: presence ``[B, T]`` in [0, 1] says how strongly the
        model holds that the tile contains the referent at all (the family's own signal, e.g. RS2-SAM2's presence head
        or pseudo-mask peak; else the mask's highest probability). Whole-raster referring gates and ranks tiles by it."""
        if self.mode == "authors":
            from .authors_mode import predict_authors

            prob = predict_authors(self, images, texts)
            return (prob, prob.reshape(*prob.shape[:2], -1).max(-1)) if presence else prob
        if self.features_reusable:  # each image encoded once, decoded per text (== decode(encode(images), texts))
            return self.decode(self.encode(images, batch_size), texts, batch_size, presence=presence)
        arr = self._as_batch(images)
        texts = self._as_texts(texts)
        n_img, h, w, _ = arr.shape
        n_txt = len(texts)
        bs = max(1, int(batch_size or self.batch_size))
        s = self.input_size
        out = np.empty((n_img, n_txt, h, w), dtype=np.float32)
        pres = np.empty((n_img, n_txt), dtype=np.float32)
        pairs = [(i, j) for i in range(n_img) for j in range(n_txt)]
        with torch.inference_mode():
            for start in range(0, len(pairs), bs):
                chunk = pairs[start:start + bs]
                img_idx = sorted({i for i, _ in chunk})
                px = torch.from_numpy(np.ascontiguousarray(arr[img_idx])).to(self.device)
                px = px.permute(0, 3, 1, 2)  # NCHW view of NHWC memory (channels_last)
                if (h, w) != (s, s) and self.device.type == "cpu":
                    # resize in uint8 first (torch's AVX2 path: ~25x faster than float, within 1/255)
                    px = F.interpolate(px, size=(s, s), mode="bilinear", align_corners=False,
                                       antialias=(h > s or w > s))
                    px = px.float().div_(255.0)
                else:
                    px = px.float().div_(255.0)
                    if (h, w) != (s, s):
                        px = F.interpolate(px, size=(s, s), mode="bilinear", align_corners=False,
                                           antialias=(h > s or w > s))
                pos = {i: k for k, i in enumerate(img_idx)}
                sel = torch.tensor([pos[i] for i, _ in chunk], device=self.device)
                pixels = px.index_select(0, sel).contiguous()
                with self._autocast():
                    logits, tile_presence = self._forward_pixels(pixels, [texts[j] for _, j in chunk])
                self._store(out, chunk, logits, pres, tile_presence)
        return (out, pres) if presence else out

    __call__ = predict

    def authors_outputs(self, images, texts=None, *, input_ids=None, attention_mask=None):
        """The authors' full outputs at the model's size (final_logits, final_mask, low_res_logits, ...) for n
        images and n captions in one batch; model_core.authors_mode.authors_outputs."""
        from .authors_mode import authors_outputs

        return authors_outputs(self, images, texts, input_ids=input_ids, attention_mask=attention_mask)
