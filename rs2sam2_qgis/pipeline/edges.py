"""Outlines on the image's own edges: an edge-aware refinement of a tile's probabilities before they are stitched.

SAM-style decoders (SAM2's, and so RS2-SAM2's and RSRefSeg's) draw their masks on a grid four times coarser than the
model's input and enlarge them bilinearly, so an outline can lie a pixel or two off the object's edge in the image:
on the test mosaics most false-positive pixels of class answers lie within 2 px of a true object
(bench/results/class_fp.md). A guided filter (He, Sun & Tang, "Guided Image Filtering", TPAMI 2013) re-fits the
probabilities in every small window as a linear function of the tile's colours, which moves the outline onto the
nearest colour edge within about half a mask cell and leaves flat areas as they were.
"""
from __future__ import annotations

import numpy as np

#: SAM's mask decoder draws its masks at a quarter of the model's input size
MASK_CELL_OF_INPUT = 4
#: regularisation on 0-1 colour channels: colour steps much weaker than sqrt(EDGE_EPS) (~0.03) are smoothed over
EDGE_EPS = 1e-3


def edge_radius(tile_px: int, input_px: int) -> int:
    """The filter's window radius in tile pixels: half a mask cell of a tile ``tile_px`` wide that the model sees
    at ``input_px`` (2 px when the tile is the model's input size)."""
    return max(1, round(0.5 * MASK_CELL_OF_INPUT * tile_px / max(1, input_px)))


def _box_mean(x, r: int):
    """Mean over the (2r+1)^2 window around each pixel of a tensor's last two axes; the window is cut at the
    borders."""
    import torch.nn.functional as F

    flat = x.reshape(-1, 1, *x.shape[-2:])
    return F.avg_pool2d(flat, 2 * r + 1, stride=1, padding=r, count_include_pad=False).reshape(x.shape)


def refine_edges(prob: np.ndarray, rgb: np.ndarray, radius: int, threshold: float = 0.5, eps: float = EDGE_EPS,
                 device: str = "cpu") -> np.ndarray:
    """``prob`` [T, h, w] (one map per text) re-fitted to the edges of ``rgb`` [h, w, 3] (uint8): the mean over the
    three colour channels of a guided filter of radius ``radius``, clipped to [0, 1]. Only pixels within ``radius``
    of the outline at ``threshold`` change, so an outline moves but no object appears or vanishes (a faint blob
    under the threshold stays under it). On ``device`` (the model's): a few box filters per map, about 0.14 s for
    a 1024 px tile and text on 2 CPU cores."""
    import torch
    import torch.nn.functional as F

    def near(mask):  # pixels within ``radius`` (a square) of a True one
        k = 2 * radius + 1
        return F.max_pool2d(mask[None, None].float(), k, stride=1, padding=radius)[0, 0] > 0

    with torch.no_grad():
        rgb_first = np.ascontiguousarray(np.moveaxis(rgb, -1, 0), dtype=np.float32)
        guide = torch.from_numpy(rgb_first).to(device) / 255.0  # [3, h, w]
        mean_i = _box_mean(guide, radius)
        var_i = _box_mean(guide * guide, radius) - mean_i * mean_i
        out = np.empty(prob.shape, np.float32)
        for t, p in enumerate(torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32)).to(device)):
            inside = p >= threshold
            band = near(inside) & near(~inside)
            if not bool(band.any()):
                out[t] = p.cpu().numpy()
                continue
            mean_p = _box_mean(p, radius)
            a = (_box_mean(guide * p, radius) - mean_i * mean_p) / (var_i + eps)  # [3, h, w]
            b = mean_p - a * mean_i
            fitted = (_box_mean(a, radius) * guide + _box_mean(b, radius)).mean(0).clamp_(0.0, 1.0)
            out[t] = torch.where(band, fitted, p).cpu().numpy()
    return out
