"""A small COCO mask codec (the parts of pycocotools' maskApi that referring data sets need), in numpy.

- RLE counts alternate background/foreground runs over the mask in column-major (Fortran) order, starting with
  background. Compressed RLE is the LEB128-like string of maskApi.c (`rleToString` / `rleFrString`): 5 bits per
  character + 48, continuation bit 0x20, sign bit 0x10 on the last character, counts from the third on stored as
  differences to the count two places earlier.
- Polygons are rasterised with PIL (pixel centres inside the outline, boundary included); pycocotools'
  rasteriser differs from it by at most about a pixel along the outline.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def rle_from_string(s: str | bytes) -> list[int]:
    if isinstance(s, bytes):
        s = s.decode("ascii")
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_to_string(counts: list[int]) -> str:
    out = []
    for i, x in enumerate(counts):
        x = int(x)
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_encode(mask: np.ndarray) -> dict:
    """bool HxW -> {"size": [h, w], "counts": compressed string} (as pycocotools.mask.encode)."""
    h, w = mask.shape
    flat = np.asarray(mask, bool).reshape(-1, order="F")
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0] + runs
    return {"size": [h, w], "counts": rle_to_string(runs)}


def rle_decode(rle: dict) -> np.ndarray:
    """{"size": [h, w], "counts": str|bytes|list} -> bool HxW."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = rle_from_string(counts)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() != h * w:
        raise ValueError(f"RLE counts sum to {counts.sum()}, expected {h}x{w}={h * w}")
    values = np.zeros(len(counts), bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((w, h)).T.copy()


def polygon_decode(polygons: list[list[float]], h: int, w: int) -> list[np.ndarray]:
    """COCO polygons ([x1, y1, x2, y2, ...] each) -> one bool HxW mask per polygon."""
    out = []
    for poly in polygons:
        pts = [(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)]
        img = Image.new("L", (w, h), 0)
        if len(pts) >= 3:
            ImageDraw.Draw(img).polygon(pts, fill=1, outline=1)
        out.append(np.asarray(img) > 0)
    return out


def annotation_mask(segmentation, h: int, w: int) -> np.ndarray:
    """The refer toolkit's getMask: parts decoded and summed; pixels covered exactly once are the mask (the
    authors keep `mask == 1`, so where two parts overlap the pixel is background)."""
    if isinstance(segmentation, list):
        if not segmentation:
            return np.zeros((h, w), bool)
        if isinstance(segmentation[0], dict):
            parts = [rle_decode(r) for r in segmentation]
        else:
            parts = polygon_decode(segmentation, h, w)
    elif isinstance(segmentation, dict):
        parts = [rle_decode(segmentation)]
    else:
        raise ValueError(f"unknown segmentation type {type(segmentation).__name__}")
    total = np.sum([p.astype(np.uint8) for p in parts], axis=0)
    return total == 1
