"""RefSegRS and RISBench: image / mask folders and `output_phrase_<split>.txt` lines `<key> <expression>`.

RefSegRS:  <root>/images/<id>.tif, <root>/masks/<id>.tif (grayscale; foreground where > 50).
RISBench:  <root>/img_rgb/<filename>, <root>/mask/<filename> (CroBIM's layout; the key is the file name, with
           or without its extension; foreground where > 50 as well).
One sample per line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .common import RefDataset, read_phrase_file, to_rgb_uint8

_EXTS = ("", ".tif", ".tiff", ".png", ".jpg")


def _resolve(folder: Path, key: str) -> Path:
    for ext in _EXTS:
        p = folder / f"{key}{ext}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"{key} (with any of {list(_EXTS[1:])}) not found in {folder}")


class PhraseFolder(RefDataset):
    image_dir = "images"
    mask_dir = "masks"
    threshold = 50

    def __init__(self, root, split: str = "train", size: int | None = 1024, *, transform=None):
        super().__init__(split=split, size=size, transform=transform)
        self.root = Path(root)
        phrase = self.root / f"output_phrase_{split}.txt"
        if not phrase.exists():
            raise FileNotFoundError(f"{self.name}: {phrase} not found (expected output_phrase_<split>.txt)")
        self.items = read_phrase_file(phrase)

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, index: int):
        key, text = self.items[index]
        image = to_rgb_uint8(Image.open(_resolve(self.root / self.image_dir, key)))
        mask = np.asarray(Image.open(_resolve(self.root / self.mask_dir, key)).convert("L")) > self.threshold
        return image, mask, text, f"{key}#{index}"


class RefSegRS(PhraseFolder):
    name = "refsegrs"


class RISBench(PhraseFolder):
    name = "risbench"
    image_dir = "img_rgb"
    mask_dir = "mask"
