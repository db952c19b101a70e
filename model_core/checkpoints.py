"""Checkpoints: our own format, the kinds of foreign weight files, and the strict fill they all go through.

Offline: nothing here touches the network. Kinds (`detect_kind` tells them by content, not by name):
1. "rs2sam2": our own format ({"format", "config", "state_dict", + the family's extras such as its tokenizer}):
   the file alone rebuilds the model; the config names its family (model_core/families.py).
2. "sam2": an official SAM2 .pt (`{"model": state_dict}` as facebookresearch ships) -> the SAM2 part of a model
   (sam2_weights.py).
3. "open_clip": open_clip weights (a .safetensors/.bin/.pt state dict, or a local dir with open_clip_config.json +
   open_clip_model.safetensors | open_clip_pytorch_model.bin) -> the open_clip towers of a model.
4. "beit3": BEiT-3 weights as microsoft/unilm ships them (.pth, {"model": {"beit3.*": ...}}) -> the beit3 backend of
   an RS2-SAM2 model; pass `spm=` the beit3.spm tokenizer file.
5. a family's release: its published whole model. "official" is the authors' RS2-SAM2 release (release.py; keys as in
   official_state_dict.json, mapped by rs2sam2_weights.official_key_map). Strict: every key of theirs mapped or
   dropped on purpose, every key of ours filled, shapes equal; otherwise a CheckpointError lists the rest.

Which kinds fill which model is the family's: `ModelFamily.weight_loaders`, `ModelFamily.release`. `load_model(path)`
detects the kind; kinds 2-4 fill only part of a model, so they need `base=` (a preset name, a config or a model).
`load_weights(model, path)` fills an existing model.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from .families import PRESETS, families, family_of

FORMAT = "rs2sam2-model-core/1"
ASSETS = Path(__file__).resolve().parent / "assets"
DEMO_PATH = ASSETS / "demo.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded as asked; the message lists every problem at once."""


@dataclass
class LoadReport:
    """What a load took from a file, dropped on purpose (with the reason) and left to the model."""

    kind: str
    path: str
    loaded: int = 0
    dropped: dict[str, str] = field(default_factory=dict)  # their key -> reason
    kept: list[str] = field(default_factory=list)  # our keys the file does not cover (by design)

    def __str__(self):
        return (f"{self.kind} checkpoint {self.path}: {self.loaded} tensors loaded, {len(self.dropped)} dropped "
                f"on purpose, {len(self.kept)} of ours not covered by this kind of file")


# ================================================================================================ strict fill
def format_key_list(items: list[str], n: int = 30) -> str:
    """Keys for an error message, one a line, the first n of them."""
    head = "\n    ".join(items[:n])
    more = f"\n    ... and {len(items) - n} more" if len(items) > n else ""
    return "\n    " + head + more


def check_complete(kind: str, path, unmapped: list, missing: list, misshaped: list) -> None:
    """A strict load's verdict: one CheckpointError listing every unmapped, missing and mis-shaped key."""
    if not (unmapped or missing or misshaped):
        return
    msg = [f"cannot load {kind} checkpoint {path}:"]
    if unmapped:
        msg.append(f"  {len(unmapped)} key(s) of the file map to nothing in the model:{format_key_list(unmapped)}")
    if missing:
        msg.append(f"  {len(missing)} key(s) of the model are missing from the file:{format_key_list(missing)}")
    if misshaped:
        msg.append(f"  {len(misshaped)} key(s) have a different shape:{format_key_list(misshaped)}")
    raise CheckpointError("\n".join(msg))


def strict_fill(model: nn.Module, src: dict[str, torch.Tensor], key_map: dict[str, str], *, kind: str,
                path: str, unused: dict[str, str] | None = None, required: Iterable[str] | None = None,
                allow_unmapped: bool = False) -> LoadReport:
    """Copy src[their] into model[our] for every pair in key_map (their -> our).

    Errors (all listed at once): a key of src neither mapped nor under an `unused` prefix (unless allow_unmapped),
    a `required` key of ours not filled, a shape mismatch."""
    unused = unused or {}
    ours = model.state_dict()
    required = set(key_map.values()) if required is None else set(required)
    unmapped, misshaped, dropped = [], [], {}
    pairs = []
    for k in src:
        if k in key_map:
            o = key_map[k]
            if tuple(src[k].shape) != tuple(ours[o].shape):
                misshaped.append(f"{k} -> {o}: file {tuple(src[k].shape)} vs model {tuple(ours[o].shape)}")
            else:
                pairs.append((k, o))
            continue
        reason = next((r for p, r in unused.items() if k.startswith(p)), None)
        if reason is not None:
            dropped[k] = reason
        elif allow_unmapped:
            dropped[k] = "not part of this model"
        else:
            unmapped.append(k)
    filled = {o for _, o in pairs}
    missing = sorted(required - filled - {key_map[k] for k in src if k in key_map})
    check_complete(kind, path, unmapped, missing, misshaped)
    with torch.no_grad():
        for k, o in pairs:
            ours[o].copy_(src[k].to(dtype=ours[o].dtype))
    kept = sorted(set(ours) - filled)
    return LoadReport(kind=kind, path=str(path), loaded=len(pairs), dropped=dropped, kept=kept)


# ================================================================================================ file reading
def need_file(path: Path, what: str) -> Path:
    """`path` if it is a file, else a FileNotFoundError that says what the folder holds instead."""
    if not path.is_file():
        where = path.parent if path.parent != Path("") else Path.cwd()
        listing = ""
        if where.is_dir():
            names = sorted(p.name for p in where.iterdir())[:20]
            listing = f" (that folder holds: {', '.join(names) or 'nothing'})"
        raise FileNotFoundError(f"{what} not found: looked for {path.resolve()}{listing}")
    return path


def load_torch_file(path: Path):
    """torch.load restricted to tensors and plain containers (weights_only); argparse.Namespace (the "args" entry of
    many research checkpoints) is allowed too. Memory-mapped when the file format allows it."""
    import argparse

    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e) and "zip" not in str(e):
                raise
            return torch.load(str(path), map_location="cpu", weights_only=True)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A tensor dict from .safetensors or a torch file ({"model": sd} / {"state_dict": sd} / sd)."""
    path = need_file(Path(path), "checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = load_torch_file(path)
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "module"):
            if key in obj and isinstance(obj[key], dict) and "format" not in obj:
                return obj[key]
    return obj


OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin", "model.safetensors",
                   "pytorch_model.bin")


def open_clip_folder(path) -> Path:
    """The folder of open_clip weights given as a file, a folder or open_clip's 'local-dir:FOLDER'."""
    p = Path(str(path).removeprefix("local-dir:"))
    return p if p.is_dir() else p.parent


def resolve_open_clip_file(path) -> Path:
    """open_clip weights given as a file, a folder or 'local-dir:FOLDER' -> the weight file (a folder's first of
    OPEN_CLIP_FILES)."""
    p = Path(str(path).removeprefix("local-dir:"))
    if not p.is_dir():
        return p
    for name in OPEN_CLIP_FILES:
        if (p / name).is_file():
            return p / name
    raise FileNotFoundError(f"no open_clip weights in {p.resolve()}: looked for {', '.join(OPEN_CLIP_FILES)}")


# ================================================================================================ own format
def save_atomic(obj, path) -> Path:
    """torch.save to a temporary name beside ``path``, then renamed over it: a reader (or a crash) never sees half a
    checkpoint. Creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def save_model(model, path) -> Path:
    """Our format: config + state dict + what the model's `checkpoint_extras()` adds (a tokenizer file, for the
    families that have one): the file alone rebuilds the model."""
    blob = {"format": FORMAT, "config": model.cfg.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    if hasattr(model, "checkpoint_extras"):
        blob.update(model.checkpoint_extras())
    return save_atomic(blob, path)


def _load_own(path: Path):
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    cfg = family_of(obj["config"]).config_class.from_dict(obj["config"])
    model = _construct(cfg, empty=True)
    report = strict_fill(model, obj["state_dict"], {k: k for k in model.state_dict()}, kind="rs2sam2",
                         path=str(path), required=set(model.state_dict()))
    if hasattr(model, "restore_extras"):
        model.restore_extras(obj)
    model.load_report = report
    return model


@contextlib.contextmanager
def init_empty_parameters():
    """Create parameters on the meta device while modules are built (their random init then costs nothing);
    buffers stay real. Same idea as accelerate's init_empty_weights."""
    orig = nn.Module.register_parameter

    def register(module, name, param):
        orig(module, name, param)
        if param is not None:
            p = module._parameters[name]
            module._parameters[name] = nn.Parameter(p.to("meta"), requires_grad=p.requires_grad)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = orig


def _construct(cfg, empty: bool = False):
    """Build the config's family's model; empty=True skips random initialisation of parameters (they are created on
    the meta device and materialised uninitialised) when a strict load will overwrite every tensor."""
    model_class = family_of(cfg).model_class
    if not empty:
        return model_class(cfg)
    with init_empty_parameters():
        model = model_class(cfg)
    return _materialise(model)


def _materialise(model):
    for mod in model.modules():
        for name, p in list(mod._parameters.items()):
            if p is not None and p.is_meta:
                mod._parameters[name] = nn.Parameter(torch.empty_like(p, device="cpu"), requires_grad=p.requires_grad)
    return model


# ================================================================================================ detection
def _releases():
    return [f.release for f in families() if f.release is not None]


def detect_kind(path) -> str:
    """'rs2sam2' | 'sam2' | 'open_clip' | 'beit3' | a family's release kind ('official') from the file/dir contents
    (not its name)."""
    p = str(path)
    if p.startswith("local-dir:"):
        return "open_clip"
    path = Path(p)
    if path.is_dir():
        if (path / "open_clip_config.json").is_file():
            return "open_clip"
        for release in _releases():
            if release.matches_dir(path):
                return release.kind
        layouts = "; ".join(r.description for r in _releases())
        raise CheckpointError(f"cannot tell what kind of checkpoint directory {path.resolve()} is: expected "
                              f"{layouts + ', or ' if layouts else ''}an open_clip dir (open_clip_config.json)")
    need_file(path, "checkpoint")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            keys = list(f.keys())
    else:
        obj = load_torch_file(path)
        if isinstance(obj, dict) and obj.get("format") == FORMAT:
            return "rs2sam2"
        if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
            keys = list(obj["model"].keys())
        elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            keys = list(obj["state_dict"].keys())
        else:
            keys = list(obj.keys()) if isinstance(obj, dict) else []
    return _kind_from_keys(keys, path)


def _kind_from_keys(keys: list[str], path) -> str:
    ks = [k for k in keys if isinstance(k, str)]
    for release in _releases():
        if release.matches_keys(ks):
            return release.kind
    if any(k.startswith("sam_mask_decoder.") for k in ks) and any(k.startswith("image_encoder.") for k in ks):
        return "sam2"
    if any(k.startswith("beit3.") for k in ks):
        return "beit3"
    if ("token_embedding.weight" in ks or "text.token_embedding.weight" in ks) and any(
            k.startswith("visual.") for k in ks):
        return "open_clip"
    raise CheckpointError(f"cannot tell what kind of checkpoint {Path(path).resolve()} is (first keys: {ks[:5]})")


# ================================================================================================ loading
def _base_model(base):
    if base is None:
        return None
    if isinstance(base, nn.Module):
        return base
    cfg = base if hasattr(base, "to_dict") else PRESETS[base]
    return _construct(cfg)


def load_weights(model, path, kind: str | None = None, **options) -> LoadReport:
    """Fill an existing model from any checkpoint kind its family reads (detected unless given); `options` go to the
    family's loader (the beit3 kind takes `spm=`)."""
    kind = kind or detect_kind(path)
    if kind == "rs2sam2":
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
        return strict_fill(model, obj["state_dict"], {k: k for k in model.state_dict()}, kind="rs2sam2",
                           path=str(path), required=set(model.state_dict()))
    family = family_of(model)
    if kind not in family.weight_loaders:
        known = ", ".join(sorted(family.weight_loaders)) or "none"
        raise CheckpointError(f"a {kind} checkpoint cannot fill a {family.name} model: it reads our own format "
                              f"and these kinds: {known}")
    return family.weight_loaders[kind](model, path, **options)


def load_model(path, base=None, **kw):
    """Load a model from a checkpoint of any supported kind (see module docstring).

    "demo" resolves to the bundled demo checkpoint (model_core/assets/demo.pt). Whole-model kinds (our format, a
    family's release) need nothing else; part kinds (sam2, open_clip, beit3) need `base` (preset name, config or
    model) whose remaining parts keep their weights."""
    if str(path) == "demo":
        if not DEMO_PATH.is_file():
            raise FileNotFoundError(f"the bundled demo checkpoint is missing: looked for {DEMO_PATH} "
                                    "(it ships with the source tree; reinstall, or give a checkpoint path)")
        path = DEMO_PATH
    p = str(path)
    if not p.startswith("local-dir:") and not Path(p).exists():
        raise FileNotFoundError(f"checkpoint not found: looked for {Path(p).resolve()}")
    kind = kw.pop("kind", None) or detect_kind(path)
    if kind == "rs2sam2":
        return _load_own(Path(path))
    release = next((r for r in _releases() if r.kind == kind), None)
    if release is not None and not isinstance(base, nn.Module):
        # built on the meta device, weights memory-mapped and assigned; base: None (the release's own preset), a
        # preset or a config
        return release.load(Path(path), cfg=PRESETS[base] if isinstance(base, str) else base)
    if base is None:
        raise ValueError(f"{path} is a {kind} checkpoint, which fills only part of a model: pass base= a preset "
                         f"({', '.join(PRESETS)}), a config or a model")
    model = _base_model(base)
    model.load_report = load_weights(model, path, kind=kind, **kw)
    return model
