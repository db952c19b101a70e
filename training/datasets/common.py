"""What every referring data set shares: the sample format, resizing as the authors do it, and augmentations that
keep the sentence true.

A data set implements `raw(i) -> (image uint8 HxWx3, mask bool HxW, text, sample_id)` at the image's own size;
`__getitem__` turns that into the training format:
`{"image": float32 [3,S,S] in [0,1], "mask": float32 [S,S] in {0,1}, "text": str, "id": str}` with S = `size`
(image: PIL bilinear, which antialiases when shrinking, as torchvision's resize of a PIL image; mask: nearest).
`size=None` keeps the own size (for evaluation at the mask's size).
"""
from __future__ import annotations

import re

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 HxWx3 -> uint8 size x size x 3, aspect ratio not kept (the authors' stretch), PIL bilinear."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """bool HxW -> bool (size), nearest neighbour (PIL's NEAREST, as torchvision on a PIL mask)."""
    h, w = (size, size) if isinstance(size, int) else size
    if mask.shape == (h, w):
        return mask
    return np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((w, h), Image.NEAREST)) > 0


def to_rgb_uint8(pil: Image.Image) -> np.ndarray:
    return np.asarray(pil.convert("RGB"), dtype=np.uint8)


_SWAPS = {"left": "right", "right": "left", "leftmost": "rightmost", "rightmost": "leftmost", "west": "east",
          "east": "west", "western": "eastern", "eastern": "western", "westmost": "eastmost",
          "eastmost": "westmost", "northwest": "northeast", "northeast": "northwest", "southwest": "southeast",
          "southeast": "southwest"}
_SWAP_RE = re.compile(r"\b(" + "|".join(sorted(_SWAPS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def swap_left_right(text: str) -> str:
    """The sentence that describes the mirrored image: left <-> right, west <-> east (case kept)."""

    def repl(m):
        word = m.group(0)
        new = _SWAPS[word.lower()]
        return new.capitalize() if word[0].isupper() else new

    return _SWAP_RE.sub(repl, text)


class HFlipSwap:
    """Horizontal flip with probability p; the sentence's left/right (west/east) words are swapped so it stays true.
    Sentences with directional words it cannot rewrite safely ("clockwise") are never flipped.
    Draws from torch's global RNG: checkpointed by the trainer (exact resume with num_workers 0) and seeded per
    DataLoader worker by torch."""

    def __init__(self, p: float = 0.5, seed: int | None = None):
        self.p = p

    def __call__(self, image, mask, text):
        if "clockwise" in text.lower() or float(torch.rand(())) >= self.p:
            return image, mask, text
        return image[:, ::-1].copy(), mask[:, ::-1].copy(), swap_left_right(text)


class RandomBoxes:
    """The authors' RRSIS-D augmentation applied to one image: n in [lo, hi] black box x box squares at random
    places (they use the image width for both axes; we use each axis' own size)."""

    def __init__(self, n=(20, 60), box: int = 32):
        self.n, self.box = n, box

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        image = image.copy()
        h, w = image.shape[:2]
        for _ in range(int(rng.integers(self.n[0], self.n[1] + 1))):
            y, x = int(rng.integers(0, max(1, h - self.box))), int(rng.integers(0, max(1, w - self.box)))
            image[y:y + self.box, x:x + self.box] = 0
        return image


class RefDataset(Dataset):
    """Base: subclasses set `name` and implement `__len__` and `raw(i)`."""

    name = "?"

    def __init__(self, split: str, size: int | None, transform=None):
        self.split, self.size, self.transform = split, size, transform

    def raw(self, index: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        image, mask, text, sid = self.raw(index)
        if self.transform is not None:
            image, mask, text = self.transform(image, mask, text)
        if self.size is not None:
            image, mask = resize_image(image, self.size), resize_mask(mask, self.size)
        return {
            "image": torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0),
            "mask": torch.from_numpy(np.array(mask, dtype=bool, copy=True)).float(),
            "text": text,
            "id": sid,
        }


def read_phrase_file(path) -> list[tuple[str, str]]:
    """Lines `<key> <expression>` (RefSegRS / RISBench). The expression is stripped (the authors keep RefSegRS's
    trailing newline; sentencepiece normalisation drops it anyway)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            key, _, text = line.partition(" ")
            out.append((key, text.strip()))
    return out
