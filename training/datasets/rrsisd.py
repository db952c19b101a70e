"""RRSIS-D in the refer toolkit's layout (as the authors read it):

    <root>/rrsisd/refs(unc).p        pickled list of refs: ref_id, ann_id, image_id, split, sentences[{sent, raw}]
    <root>/rrsisd/instances.json     COCO-like: images (id, file_name, height, width), annotations (id, image_id,
                                     segmentation as polygons or RLE)
    <root>/images/rrsisd/JPEGImages/<file_name>   (also accepted: <root>/images/<file_name>, <root>/JPEGImages/)

Train: one sample per ref, a random sentence of the ref each time (the authors' rule); optionally the authors'
augmentation (a fixed random 20% of refs, drawn once, get 20-60 black 32x32 boxes). Val/test: one sample per
sentence of every ref of the split (their evaluation).
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from .coco_mask import annotation_mask
from .common import RandomBoxes, RefDataset, to_rgb_uint8


def _find(root: Path, names: list[str]) -> Path:
    for n in names:
        if (root / n).exists():
            return root / n
    raise FileNotFoundError(f"none of {names} under {root}")


class RRSISD(RefDataset):
    name = "rrsisd"

    def __init__(self, root, split: str = "train", size: int | None = 1024, *, transform=None,
                 all_sentences: bool | None = None, box_aug: bool | None = None, seed: int = 2401):
        super().__init__(split=split, size=size, transform=transform)
        self.root = Path(root)
        refs_path = _find(self.root, ["rrsisd/refs(unc).p", "refs(unc).p"])
        inst_path = _find(self.root, ["rrsisd/instances.json", "instances.json"])
        with open(refs_path, "rb") as fh:
            refs = pickle.load(fh)
        with open(inst_path, encoding="utf-8") as fh:
            inst = json.load(fh)
        self.images = {im["id"]: im for im in inst["images"]}
        self.anns = {a["id"]: a for a in inst["annotations"]}
        self.refs = [r for r in refs if r["split"] == split]
        if not self.refs:
            raise ValueError(f"RRSIS-D: no refs with split {split!r} in {refs_path}")
        self.all_sentences = (split != "train") if all_sentences is None else all_sentences
        if self.all_sentences:
            self.items = [(i, j) for i, r in enumerate(self.refs) for j in range(len(r["sentences"]))]
        else:
            self.items = [(i, None) for i in range(len(self.refs))]
        self.rng = np.random.default_rng(seed)
        box_aug = (split == "train") if box_aug is None else box_aug
        n = len(self.refs)
        self.boxed = set(self.rng.choice(n, size=int(0.2 * n), replace=False).tolist()) if box_aug else set()
        self.boxes = RandomBoxes()
        self.image_dirs = [self.root / "images" / "rrsisd" / "JPEGImages", self.root / "images",
                           self.root / "JPEGImages", self.root]

    def __len__(self) -> int:
        return len(self.items)

    def _image_path(self, file_name: str) -> Path:
        for d in self.image_dirs:
            if (d / file_name).exists():
                return d / file_name
        raise FileNotFoundError(f"RRSIS-D image {file_name} not found under {self.root}/images")

    def raw(self, index: int):
        ri, si = self.items[index]
        ref = self.refs[ri]
        if si is None:
            si = int(self.rng.integers(len(ref["sentences"])))
        sent = ref["sentences"][si]
        text = sent.get("sent") or sent.get("raw", "")
        im = self.images[ref["image_id"]]
        file_name = im.get("file_name") or ref.get("file_name")
        image = to_rgb_uint8(Image.open(self._image_path(file_name)))
        h, w = image.shape[:2]
        mask = annotation_mask(self.anns[ref["ann_id"]]["segmentation"], int(im.get("height", h)),
                               int(im.get("width", w)))
        if ri in self.boxed:
            image = self.boxes(image, self.rng)
        return image, mask, text, f"{ref['ref_id']}-{si}"
