"""What the plugin needs from pip, in one place (tests/test_deps_requirements.py checks it against pyproject.toml).

A deployed plugin has no pyproject.toml beside it, so the list lives here; the test keeps both in step.
Pure data + tiny helpers: no Qt, no QGIS, no torch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    dist: str          # distribution name on PyPI
    spec: str          # PEP 508 requirement (as in pyproject.toml)
    module: str        # import name the plugin checks for
    needed_for: str    # "run" (every model, the demo included: all build on sam2 + open_clip) or "models" (BEiT-3 only)


# Mirrors pyproject.toml [project].dependencies (same order); the import name and role are ours.
REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("torch", "torch>=2.5.1", "torch", "run"),
    Requirement("torchvision", "torchvision>=0.20.1", "torchvision", "run"),
    Requirement("numpy", "numpy>=1.24.4,<2", "numpy", "run"),
    Requirement("affine", "affine<3", "affine", "run"),
    Requirement("sam2", "sam2==1.1.0", "sam2", "run"),
    Requirement("open_clip_torch", "open_clip_torch>=3.0", "open_clip", "run"),
    Requirement("timm", "timm>=1.0.17", "timm", "run"),
    Requirement("torchscale", "torchscale==0.3.0", "torchscale", "models"),
    Requirement("fairscale", "fairscale>=0.4.0", "fairscale", "models"),
    Requirement("sentencepiece", "sentencepiece>=0.2", "sentencepiece", "run"),
    Requirement("safetensors", "safetensors>=0.4", "safetensors", "run"),
    Requirement("rasterio", "rasterio>=1.3.10", "rasterio", "run"),
    Requirement("shapely", "shapely>=2.0", "shapely", "run"),
    Requirement("pyproj", "pyproj>=3.6", "pyproj", "run"),
    Requirement("pyogrio", "pyogrio>=0.9", "pyogrio", "run"),
    Requirement("tqdm", "tqdm>=4.66", "tqdm", "run"),
    Requirement("pillow", "pillow>=9.4", "PIL", "run"),
)

# Installed with --no-deps (their declared pins clash with QGIS's numpy or with each other); the dependencies
# they really need are listed here and installed in the main pass.
#   sam2 1.1.0 declares numpy>=1.24.4 (Debian 12's QGIS ships 1.24.2, which works) and is an sdist whose build
#     would pull a second torch into an isolated build env; built with SAM2_BUILD_CUDA=0, no build isolation.
#   torchscale 0.3.0 pins timm==0.6.13 and fairscale==0.4.0, clashing with open_clip's timm>=1.0.17.
NO_DEPS: dict[str, tuple[str, ...]] = {
    "sam2": ("hydra-core>=1.3.2", "iopath>=0.1.10"),
    "torchscale": (),
}

# Built against the platform's compilers / CUDA / GDAL: only wheels, never a source build inside QGIS.
HEAVY_BINARY = ("torch", "torchvision", "numpy", "rasterio", "shapely", "pyproj", "pyogrio", "pillow",
                "sentencepiece", "safetensors", "GDAL", "scipy")

# Packages QGIS (or GDAL, Processing, other plugins) load from QGIS's own Python: never replaced, never shadowed.
# Pinned to QGIS's version when QGIS's Python has them (plus every one of REQUIREMENTS it has).
PROTECTED = ("numpy", "GDAL", "pyproj", "shapely", "pillow", "PyQt5", "PyQt5-sip", "sip", "QScintilla",
             "PyQt6", "scipy", "pandas", "matplotlib", "h5py", "netCDF4", "psycopg2", "lxml", "OWSLib",
             "fiona", "geopandas", "rasterio", "pyogrio")

TORCH_DISTS = ("torch", "torchvision")


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name (`Open_Clip.torch` -> `open-clip-torch`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    """Distribution name at the start of a PEP 508 requirement string."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    if not match:
        raise ValueError(f"not a requirement: {spec!r}")
    return match.group(1)
