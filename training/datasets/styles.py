"""Style families: domain randomization of the synthetic generator's look.

The demo overfits one look (ground palette, sun from the top left, 0.5 m pixels, one blur): on scenes of an
independent generator it scores below a brightness threshold. A style family is a distribution over the knobs a
sensor and a place change (ground palette and texture, roof and vehicle tint, object shapes, sun azimuth and
shadow length, ground sample distance 0.3-2 m, blur, noise, and a 16-bit-like radiometry: gamma, dynamic range and
offset, then the engine's 2-98 percentile stretch to 8 bits). ``sample_look`` draws one concrete ``Look`` from a
family; ``generate_scene(..., look=...)`` draws the scene with it.

One family (``HELD_OUT``) is never drawn for training: validating on it measures generalisation to an unseen look.
Colour words stay true in every family: tints shift a palette colour by at most ~15%, never across names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: the generator's own ground sampling distance (m/px): object sizes in pixels are drawn for it
NATIVE_GSD = 0.5


@dataclass(frozen=True)
class StyleFamily:
    """Ranges (lo, hi) of each knob; a look draws uniformly in them (gsd log-uniformly)."""

    name: str
    grounds: tuple[tuple[int, int, int], ...]  # base colours of bare ground
    texture: tuple[float, float]               # amplitude of the ground texture (1 = the generator's)
    water: tuple[int, int, int]
    road_grey: tuple[float, float]
    tint: tuple[float, float]                  # per-channel gain of the whole scene (white balance)
    l_shaped: float                            # share of L-shaped buildings
    blob_trees: float                          # share of irregular tree crowns (else discs)
    sun_azimuth: tuple[float, float]           # degrees, direction the shadows fall (0 = east, 90 = south)
    shadow_len: tuple[float, float]            # native pixels (the generator: 3-5, i.e. 4-7 along the diagonal)
    shadow_dark: tuple[float, float]           # multiplier of the shadow factor (< 1: darker)
    gsd: tuple[float, float]                   # m/px
    blur: tuple[float, float]                  # Gaussian sigma (px) after the stretch
    noise: tuple[float, float]                 # sensor noise (in 8-bit units before the stretch)
    gamma: tuple[float, float]                 # sensor response: linear ** gamma
    dynamic_range: tuple[float, float]         # share of the 16-bit range the scene spans


@dataclass(frozen=True)
class Look:
    """One concrete draw of a family (what ``generate_scene`` reads)."""

    family: str
    grounds: tuple[tuple[int, int, int], ...]
    texture: float
    water: tuple[int, int, int]
    road_grey: float
    tint: tuple[float, float, float]
    l_shaped: float
    blob_trees: float
    shadow: tuple[int, int]                    # (dx, dy) in native pixels
    shadow_dark: float
    gsd: float
    blur: float
    noise: float
    gamma: float
    dynamic_range: float
    offset: float                              # DN offset as a share of the 16-bit range


_TEMPERATE = ((98, 122, 70), (132, 128, 96), (118, 108, 86), (110, 128, 84))
FAMILIES: dict[str, StyleFamily] = {f.name: f for f in (
    StyleFamily("temperate", _TEMPERATE, (0.7, 1.5), (34, 62, 92), (104, 124), (0.95, 1.05), 0.2, 0.3,
                (0, 360), (2, 6), (0.9, 1.1), (0.35, 0.9), (0.3, 1.0), (2, 6), (0.85, 1.2), (0.2, 0.6)),
    StyleFamily("arid", ((176, 156, 120), (190, 170, 130), (160, 136, 104), (200, 184, 150)), (0.3, 0.9),
                (40, 82, 104), (120, 150), (0.98, 1.1), 0.4, 0.6, (0, 360), (1, 4), (0.7, 1.0), (0.4, 1.2),
                (0.3, 0.9), (2, 5), (0.7, 1.0), (0.3, 0.8)),
    StyleFamily("urban", ((128, 126, 120), (112, 112, 110), (140, 134, 124), (100, 108, 96)), (0.5, 1.2),
                (30, 52, 70), (88, 108), (0.94, 1.04), 0.6, 0.2, (0, 360), (3, 8), (0.75, 1.0), (0.3, 0.7),
                (0.3, 0.8), (2, 6), (0.9, 1.3), (0.25, 0.7)),
    StyleFamily("coarse", _TEMPERATE + ((92, 110, 78),), (0.6, 1.3), (28, 56, 84), (100, 130), (0.92, 1.06),
                0.3, 0.5, (0, 360), (1, 3), (0.85, 1.05), (0.9, 2.0), (0.8, 1.6), (4, 10), (0.8, 1.3),
                (0.1, 0.4)),
    StyleFamily("dusk", ((84, 100, 64), (120, 110, 84), (150, 136, 108), (104, 112, 80)), (0.8, 1.6),
                (26, 44, 64), (96, 120), (0.88, 1.14), 0.3, 0.7, (0, 360), (6, 11), (0.65, 0.9), (0.45, 1.3),
                (0.4, 1.1), (3, 8), (1.3, 1.8), (0.15, 0.5)),
)}
#: the family never drawn for training: validation on it measures generalisation to an unseen look
HELD_OUT = "dusk"
TRAIN_FAMILIES = tuple(n for n in FAMILIES if n != HELD_OUT)


def sample_look(family: str, rng: np.random.Generator) -> Look:
    """One look of ``family``: every knob uniform in its range, the gsd log-uniform, tints per channel."""
    f = FAMILIES[family]

    def u(r):
        return float(rng.uniform(*r))

    az = math.radians(u(f.sun_azimuth))
    length = u(f.shadow_len)
    shadow = (int(round(length * math.cos(az))), int(round(length * math.sin(az))))
    return Look(family=f.name, grounds=f.grounds, texture=u(f.texture), water=f.water, road_grey=u(f.road_grey),
                tint=tuple(float(t) for t in rng.uniform(*f.tint, size=3)), l_shaped=f.l_shaped,
                blob_trees=f.blob_trees, shadow=shadow, shadow_dark=u(f.shadow_dark),
                gsd=float(math.exp(rng.uniform(math.log(f.gsd[0]), math.log(f.gsd[1])))), blur=u(f.blur),
                noise=u(f.noise), gamma=u(f.gamma), dynamic_range=u(f.dynamic_range),
                offset=float(rng.uniform(0.0, 0.2)))


def develop(img: np.ndarray, look: Look, rng: np.random.Generator) -> np.ndarray:
    """Float scene colours (8-bit scale) -> the uint8 image the engine would feed the model: white balance, the
    sensor's response (gamma) and noise in a 16-bit range with the look's offset and span, then the engine's joint
    2-98 percentile stretch (rs2sam2_qgis/pipeline/source.py) to 8 bits."""
    lin = np.clip(img * np.asarray(look.tint, np.float32) / 255.0, 0.0, 1.2)
    lin = lin ** look.gamma
    dn = 65535.0 * (look.offset + look.dynamic_range * lin / 1.2 ** look.gamma)
    dn += rng.normal(0, look.noise * 65535.0 * look.dynamic_range / 255.0, dn.shape)
    dn = np.clip(np.round(dn), 0, 65535)
    lo, hi = np.percentile(dn, [2.0, 98.0])
    return np.clip((dn - lo) / max(hi - lo, 1.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
