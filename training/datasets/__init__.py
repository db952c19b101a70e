"""Referring-segmentation data sets: `build_dataset(name, split, size, root=None, **options)`.

Names: "synthetic" (generated, no root), "rrsisd", "refsegrs", "risbench", "gis" (a folder of GeoTIFF + GeoPackage).
Every data set returns `{"image": [3,S,S] float in [0,1], "mask": [S,S] {0,1}, "text": str, "id": str}` and offers
`raw(i)` (image and mask at their own size) for evaluation.
"""
from __future__ import annotations

from .common import HFlipSwap, RandomBoxes, RefDataset, swap_left_right
from .gis_folder import GISFolder
from .refsegrs import RefSegRS, RISBench
from .rrsisd import RRSISD
from .synthetic import SyntheticRefer, generate_scene

DATASETS = {"synthetic": SyntheticRefer, "rrsisd": RRSISD, "refsegrs": RefSegRS, "risbench": RISBench,
            "gis": GISFolder}


def build_dataset(name: str, split: str, size: int | None, root=None, **options) -> RefDataset:
    key = name.lower().replace("-", "")
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {sorted(DATASETS)}")
    cls = DATASETS[key]
    if key == "synthetic":
        return cls(split=split, size=size, **options)
    if root is None:
        raise ValueError(f"data set {name!r} needs a root folder (--data-root)")
    return cls(root, split=split, size=size, **options)


__all__ = ["DATASETS", "build_dataset", "RefDataset", "SyntheticRefer", "RRSISD", "RefSegRS", "RISBench",
           "GISFolder", "HFlipSwap", "RandomBoxes", "swap_left_right", "generate_scene"]
