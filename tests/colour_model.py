"""A deterministic test model that follows the segmentation-model protocol (docs/ARCHITECTURE.md).

What it computes, exactly: the text is searched for a colour word (``COLOURS``); with target colour c (RGB in
[0, 1]) the mask logit of a pixel p is ``gain * (tolerance - max(|p - c|))`` (Chebyshev distance), so its sigmoid
is > 0.5 exactly where every channel is within ``tolerance`` of the target. A text without a colour word that names
one of the fixture's nouns (``NOUNS``: "the boxes", "the roof") finds every colour of ``COLOURS`` (the nearest
target per pixel), as a model knows a class whatever its colour; any other text without a colour word gives
``-gain`` everywhere (nothing found). With ``out_stride`` > 1 the logits come out at input_size / out_stride
(average-pooled), to exercise the predictor's resize back to the tile size. With ``edge_fade`` = e > 0 the
logits within e pixels of the tile's border are -gain (a model that is blind at tile borders): only a proper
weighted blend of overlapping tiles stitches objects across tile borders without seams.

The production path (Predictor + engine) is the same code that runs the real models.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

COLOURS = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "white": (1.0, 1.0, 1.0),
    "black": (0.0, 0.0, 0.0),
    "yellow": (1.0, 1.0, 0.0),
}


#: the things the fixture's scenes hold, whatever their colour
NOUNS = {"box", "boxes", "roof", "roofs", "tank", "tanks", "pool", "pools", "building", "buildings"}


def colour_of(text: str):
    for word in text.lower().replace(",", " ").split():
        if word in COLOURS:
            return word
    return None


class ColourModel(nn.Module):
    def __init__(self, input_size: int = 64, gain: float = 20.0, tolerance: float = 0.25, out_stride: int = 1,
                 name: str = "colour-test", edge_fade: int = 0):
        super().__init__()
        self.input_size = int(input_size)
        self.gain = float(gain)
        self.tolerance = float(tolerance)
        self.out_stride = int(out_stride)
        self.name = name
        self.edge_fade = int(edge_fade)  # logits forced to -gain within this many pixels of the tile's border
        self.register_buffer("targets", torch.tensor(list(COLOURS.values()), dtype=torch.float32))
        self.calls = 0  # number of predict_masks calls (tests use it to check batching)

    def predict_masks(self, pixels: torch.Tensor, texts: list[str]) -> torch.Tensor:
        assert pixels.ndim == 4 and pixels.shape[1] == 3 and pixels.shape[0] == len(texts)
        assert pixels.shape[-1] == self.input_size and pixels.shape[-2] == self.input_size
        self.calls += 1
        names = list(COLOURS)
        out = []
        for k, text in enumerate(texts):
            c = colour_of(text)
            p = pixels[k].float()
            if c is None and NOUNS.intersection(text.lower().replace(",", " ").split()):
                dist = (p[None] - self.targets[:, :, None, None]).abs().amax(dim=1).amin(dim=0, keepdim=True)
                logit = self.gain * (self.tolerance - dist)
            elif c is None:
                logit = torch.full_like(p[:1], -self.gain)
            else:
                target = self.targets[names.index(c)].view(3, 1, 1)
                dist = (p - target).abs().amax(dim=0, keepdim=True)
                logit = self.gain * (self.tolerance - dist)
            out.append(logit)
        logits = torch.stack(out)
        if self.edge_fade > 0:
            e = self.edge_fade
            fade = torch.ones_like(logits, dtype=torch.bool)
            fade[..., e:-e, e:-e] = False
            logits = torch.where(fade, torch.full_like(logits, -self.gain), logits)
        if self.out_stride > 1:
            logits = F.avg_pool2d(logits, self.out_stride)
        return logits

    def forward(self, pixels, texts):
        return {"logits": self.predict_masks(pixels, texts)}


# ---------------------------------------------------------------------------- small GeoTIFFs for the engine tests
def write_raster(path, data, crs="EPSG:32633", transform=None, nodata=None, **profile):
    """Write ``data`` [bands, H, W] (any dtype) as a GeoTIFF; ``transform`` defaults to 1 m pixels in UTM 33N."""
    import numpy as np
    import rasterio
    from affine import Affine

    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    if transform is None:
        transform = Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 5000000.0)
    prof = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype=data.dtype,
                crs=crs, transform=transform, nodata=nodata)
    prof.update(profile)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # rasters without a CRS on purpose
        with rasterio.open(path, "w", **prof) as ds:
            ds.write(data)
    return str(path)


def rgb_scene(h, w, boxes, background=(60, 60, 60), dtype="uint8", scale=1):
    """[3, H, W] image of the given background with ``boxes`` = [(row0, col0, row1, col1, (r, g, b)), ...]."""
    import numpy as np

    img = np.empty((3, h, w), dtype=np.float64)
    img[:] = np.array(background, dtype=np.float64)[:, None, None]
    for r0, c0, r1, c1, colour in boxes:
        img[:, r0:r1, c0:c1] = np.array(colour, dtype=np.float64)[:, None, None]
    return (img * scale).astype(dtype)
