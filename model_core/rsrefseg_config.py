"""Configuration of the RSRefSeg family (Liu et al. 2025), in the style of config.py (and sharing its SAM2 parts).

`RSRefSegConfig.to_dict()` carries `family: "rsrefseg"`, which is how a saved checkpoint says which family rebuilds it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import ConfigBase, HieraConfig, SamConfig

SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


@dataclass
class TowersConfig:
    """open_clip image + text towers (SigLIP in the full preset), built offline with random weights.

    tokenizer "siglip-spm": SigLIP's T5 sentencepiece (c4-en, 32000), read from `tokenizer_dir` (a local directory,
    usually the one holding the open_clip weights) as `spiece.model`; texts padded to the full context (SigLIP pools
    the last position), eos = pad = 1 (open_clip's SigLipTokenizer). "clip-bpe": open_clip's bundled CLIP BPE."""

    clip_model: str = "ViT-SO400M-14-SigLIP-384"
    clip_overrides: dict[str, Any] = field(default_factory=dict)
    image_size: int = 384
    patch_size: int = 14
    mean: tuple[float, float, float] = SIGLIP_MEAN
    std: tuple[float, float, float] = SIGLIP_STD
    tokenizer: str = "siglip-spm"
    tokenizer_dir: str | None = None
    context_length: int | None = None  # None: the text tower's own


@dataclass
class PrompterConfig:
    sparse_grid: int = 7  # sparse tokens = sparse_grid**2 (27 -> 14 -> 7 with two stride-2 convs)


@dataclass
class LoRAConfig:
    r: int = 16
    alpha: float = 16.0
    dropout: float = 0.0
    trunk: bool = True   # SAM2 Hiera attention (qkv, proj)
    towers: bool = True  # attention of both open_clip towers


@dataclass
class RSRefSegLossConfig:
    bce_weight: float = 5.0
    dice_weight: float = 0.0


@dataclass
class RSRefSegConfig(ConfigBase):
    family: str = "rsrefseg"
    name: str = "rsrefseg"
    towers: TowersConfig = field(default_factory=TowersConfig)
    hiera: HieraConfig = field(default_factory=HieraConfig)
    sam: SamConfig = field(default_factory=SamConfig)
    prompter: PrompterConfig = field(default_factory=PrompterConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    loss: RSRefSegLossConfig = field(default_factory=RSRefSegLossConfig)
    cpu_bf16: bool = False  # as ModelConfig.cpu_bf16 (model_core/precision.py)


def rsrefseg_preset() -> RSRefSegConfig:
    """The authors' RSRefSeg 2 sizes on SAM2: SigLIP so400m/14 at 384 (27x27 tokens, width 1152) + Hiera-L at 1024."""
    return RSRefSegConfig(name="rsrefseg")


def rsrefseg_tiny_preset() -> RSRefSegConfig:
    """CPU preset: a small open_clip CLIP-style config with a SigLIP-style logit bias, the bundled CLIP BPE
    tokenizer (no files, no network), a very small Hiera at 256 px."""
    return RSRefSegConfig(
        name="rsrefseg-tiny",
        towers=TowersConfig(
            clip_model="ViT-B-16", image_size=112, patch_size=16, tokenizer="clip-bpe", context_length=32,
            clip_overrides={
                "embed_dim": 64, "init_logit_bias": -10.0,
                "vision_cfg": {"image_size": 112, "patch_size": 16, "width": 64, "layers": 2, "head_width": 32},
                "text_cfg": {"context_length": 32, "width": 64, "heads": 2, "layers": 2},
            },
        ),
        hiera=HieraConfig(embed_dim=32, num_heads=1, stages=(1, 1, 2, 1), global_att_blocks=(),
                          window_pos_embed_bkg_spatial_size=(4, 4), window_spec=(8, 8, 8, 8)),
        sam=SamConfig(image_size=256, dim=64, decoder_heads=4, decoder_mlp_dim=256, iou_head_hidden_dim=64),
        prompter=PrompterConfig(sparse_grid=2),  # 7x7 tokens -> 4 -> 2
        lora=LoRAConfig(r=4, alpha=4.0),
    )
