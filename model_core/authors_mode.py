"""The authors' inference contract (official_contract.md sections 1 and 2.11), used by `Predictor(mode="authors")`.

- Preprocessing: the RGB uint8 image is resized with PIL bilinear (PIL antialiases when shrinking), aspect ratio
  not kept, to the model's two sizes (paper preset: 1024 for SAM2, 224 for BEiT-3), /255, ImageNet mean/std
  (applied inside the model for both branches).
- One caption per forward (their test.py runs batch size 1), so no caption is ever padded.
- float32 (their test.sh: --precision fp32); on a GPU TF32 is switched off during the forward.
- Decision: foreground where the logit > 0.5 (argmax over [1 - x, x]); output at the model's 1024 x 1024 grid,
  never resized back (their masks and metrics stay at 1024).

`Predictor.predict` in this mode returns that 0/1 mask per (image, text). The engine stitches tiles at the tile's
own size: with the default tile (= the model's input size, 1024) the mask is theirs exactly; another tile size gets
their 1024 mask resized to the tile with nearest neighbour. `Predictor.authors_outputs` returns their full outputs
(logits, mask, low-res logits, pseudo-mask, ...) at 1024 x 1024 for a batch of captions (padded with 3 as their
collate does), which is what model_core.fidelity compares with the golden fixture.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

MODES = ("analyst", "authors")


def check_model(model) -> None:
    if not (hasattr(model, "union_encoder") and hasattr(model, "tokenize")
            and getattr(getattr(model, "union_encoder", None), "cfg", None) is not None):
        raise TypeError(f"mode 'authors' reproduces the RS2-SAM2 authors' contract and needs an RS2-SAM2 model "
                        f"(union encoder + SAM2); {type(model).__name__} is not one: use mode 'analyst'")


def pil_resize(img: np.ndarray, size: int) -> np.ndarray:
    """(H,W,3) uint8 -> (size,size,3) uint8, PIL bilinear as torchvision's resize of a PIL image."""
    from PIL import Image

    if img.shape[0] == size and img.shape[1] == size:
        return np.ascontiguousarray(img)
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((size, size), Image.BILINEAR))


def authors_pixels(arr: np.ndarray, big: int, small: int, device) -> tuple:
    """uint8 (n,H,W,3) -> ((n,3,big,big), (n,3,small,small)) float32 in [0,1] (normalised inside the model)."""
    b = np.stack([pil_resize(a, big) for a in arr])
    s = np.stack([pil_resize(a, small) for a in arr])
    to = lambda x: torch.from_numpy(x).to(device).permute(0, 3, 1, 2).float().div_(255.0).contiguous()  # noqa: E731
    return to(b), to(s)


@contextlib.contextmanager
def no_tf32():
    """Their CPU bounds assume full fp32 matmuls/convs: TF32 off on CUDA for the duration (restored after)."""
    if not torch.cuda.is_available():
        yield
        return
    m, c = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = m, c


def _forward(pred, big, small, ids, pad) -> dict[str, torch.Tensor]:
    with torch.inference_mode(), no_tf32(), pred._autocast():
        return pred.model(big, input_ids=ids.to(pred.device), text_pad=pad.to(pred.device), union_pixels=small)


def _sizes(model):
    return int(model.input_size), int(model.union_encoder.cfg.image_size)


def predict_authors(pred, images, texts) -> np.ndarray:
    """Their 0/1 decision (logit > 0.5) for every (image, text) pair: float32 [B, T, H, W]."""
    arr = pred._as_batch(images)
    texts = pred._as_texts(texts)
    n, h, w, _ = arr.shape
    S, s = _sizes(pred.model)
    toks = [pred.model.tokenize([t]) for t in texts]  # one caption per forward, as their test.py: never padded
    out = np.empty((n, len(texts), h, w), dtype=np.float32)
    for i in range(n):
        big, small = authors_pixels(arr[i:i + 1], S, s, pred.device)
        for j, (ids, pad) in enumerate(toks):
            logits = _forward(pred, big, small, ids, pad)["logits"].float()
            mask = (logits > 0.5).float()
            if (h, w) != (S, S):
                mask = F.interpolate(mask, size=(h, w), mode="nearest")
            out[i, j] = mask[0, 0].cpu().numpy()
    return out


def authors_outputs(pred, images, texts: Sequence[str] | None = None, *, input_ids=None,
                    attention_mask=None) -> dict[str, np.ndarray]:
    """Their outputs for n images and n captions in ONE batch (captions right-padded with 3, mask = id != 3, as
    their collate), at the model's size: final_logits (n,1,S,S), final_mask (n,S,S) 0/1, low_res_logits,
    pseudo_mask, pseudo_mask_logit, text2one_w, iou_pred, object_score_logits (float32 numpy)."""
    arr = pred._as_batch(images)
    n = arr.shape[0]
    if input_ids is None:
        if texts is None or len(texts) != n:
            raise ValueError(f"need one caption per image ({n})")
        ids, pad = pred.model.tokenize(list(texts))
    else:
        ids = torch.as_tensor(input_ids, dtype=torch.long)
        if attention_mask is None:
            attention_mask = ids != 3  # their rule
        pad = ~torch.as_tensor(attention_mask, dtype=torch.bool)
        if ids.shape[0] != n:
            raise ValueError(f"{ids.shape[0]} captions for {n} images")
    S, s = _sizes(pred.model)
    big, small = authors_pixels(arr, S, s, pred.device)
    out = _forward(pred, big, small, ids, pad)
    g = lambda t: t.detach().float().cpu().numpy()  # noqa: E731
    logits = out["logits"].float()
    return {"final_logits": g(logits), "final_mask": g((logits[:, 0] > 0.5).float()),
            "low_res_logits": g(out["low_res_logits"]), "pseudo_mask": g(out["pseudo_mask"]),
            "pseudo_mask_logit": g(out["pseudo_mask_logits"]), "text2one_w": g(out["boundary_weight"]),
            "iou_pred": g(out["iou_pred"]), "object_score_logits": g(out["object_score_logits"])}
