"""Model families: what model_core needs of each family to build, save and load its models.

A family registers itself from its own module (RS2-SAM2 at the end of model.py, RSRefSeg at the end of rsrefseg.py),
in the manner of timm's `register_model`, and `build_model`, `save_model`, `load_model` and `load_weights` look it
up here: nothing else in model_core names a family, so a new family is new files plus one `register_family(...)`.

How a family is recognised:
- a model or a config object: by its class (`model_class`, `config_class`);
- a config dict (what our checkpoint format stores): by its "family" key, which each family's config carries as a
  field; the default family's configs (RS2-SAM2's) predate that key and carry none;
- a family's published whole-model weights (the authors' RS2-SAM2 release): by its `Release`, from the folder's
  layout or the state dict's key names.

This module imports nothing of model_core, so every other module may import it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ModelFamily", "Release", "PRESETS", "register_family", "unregister_family", "get_family", "family_of",
           "families"]


@dataclass(frozen=True)
class Release:
    """A family's published whole-model weights, a checkpoint kind of its own (`detect_kind` returns `kind`)."""

    kind: str
    description: str  # its layout, for the error that says a folder is of no known kind
    matches_dir: Callable[[Path], bool]  # a folder in the release's layout
    matches_keys: Callable[[Sequence[str]], bool]  # a state dict under the release's key names
    load: Callable[..., Any]  # load(path, cfg=None) -> an eval-mode model of the family


@dataclass(frozen=True)
class ModelFamily:
    """One family: `model_class(config)` builds it; its config class (de)serialises with to_dict/from_dict."""

    name: str
    config_class: type
    model_class: type
    presets: Mapping[str, Callable[[], Any]] = field(default_factory=dict)  # preset name -> a fresh config
    # checkpoint kind -> fill(model, path, **options) -> LoadReport: the other formats its models read weights from
    # (a stock SAM2 file, open_clip towers, ..., its own release); our format needs no loader
    weight_loaders: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    release: Release | None = None
    default: bool = False  # config dicts without a "family" key are this family's


_FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily) -> ModelFamily:
    """Add a family. Its name, preset names and release kind must be new, only one family may be the default, and
    a non-default family's config must carry a `family` field whose default is the family's name (so that a saved
    config says which family rebuilds it)."""
    if family.name in _FAMILIES:
        raise ValueError(f"model family {family.name!r} is already registered")
    for other in _FAMILIES.values():
        shared = sorted(set(family.presets) & set(other.presets))
        if shared:
            raise ValueError(f"presets {shared} of family {family.name!r} are already family {other.name!r}'s")
        if family.release and other.release and family.release.kind == other.release.kind:
            raise ValueError(f"checkpoint kind {family.release.kind!r} is already family {other.name!r}'s release")
        if family.default and other.default:
            raise ValueError(f"family {other.name!r} is already the default family")
    if not family.default:
        tag = {f.name: f.default for f in dataclasses.fields(family.config_class)}.get("family")
        if tag != family.name:
            raise ValueError(f"{family.config_class.__name__} needs a field `family: str = {family.name!r}`: "
                             "a saved config says by it which family rebuilds the model")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Remove a family (a plugin unloaded, a test's toy family)."""
    _FAMILIES.pop(name, None)


def families() -> list[ModelFamily]:
    """The registered families, in registration order."""
    return list(_FAMILIES.values())


def get_family(name: str) -> ModelFamily:
    if name not in _FAMILIES:
        raise KeyError(f"unknown model family {name!r}; registered: {sorted(_FAMILIES)}")
    return _FAMILIES[name]


def family_of(obj: Any) -> ModelFamily:
    """The family of a model, a config, or a config dict (the "config" entry of our checkpoint format)."""
    if isinstance(obj, Mapping):
        name = obj.get("family")
        if name is not None:
            return get_family(name)
        default = next((f for f in _FAMILIES.values() if f.default), None)
        if default is None:
            raise KeyError("this config names no model family and no family is registered as the default")
        return default
    for f in _FAMILIES.values():
        if isinstance(obj, (f.model_class, f.config_class)):
            return f
    raise KeyError(f"{type(obj).__name__} is of no registered model family (registered: {sorted(_FAMILIES)})")


class _Presets(Mapping):
    """Preset name -> config over every registered family; each access builds a fresh config, so a caller's
    changes never reach the preset."""

    @staticmethod
    def _factories() -> dict[str, Callable[[], Any]]:
        return {k: make for f in _FAMILIES.values() for k, make in f.presets.items()}

    def __getitem__(self, key: str):
        factories = self._factories()
        if key not in factories:
            raise KeyError(f"unknown preset {key!r}; known: {sorted(factories)}")
        return factories[key]()

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories())

    def __len__(self) -> int:
        return len(self._factories())

    def __repr__(self) -> str:
        return f"PRESETS({', '.join(self._factories())})"


PRESETS: Mapping[str, Any] = _Presets()
