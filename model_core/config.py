"""Configuration dataclasses and presets for RS2-SAM2.

Everything that has a size lives here: the SAM2 side image size, the union-encoder image size (hence its token
grid), widths, depths. The model code reads them from here and never hard-codes 1024 / 224 / 14 as the authors do.

`ModelConfig.to_dict()` / `ModelConfig.from_dict()` make a config JSON-serialisable, so a checkpoint can carry it.
`ConfigBase` gives every family's config the same (de)serialisation and overrides.
"""
from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class HieraConfig:
    """SAM2's Hiera trunk (arguments of sam2.modeling.backbones.hieradet.Hiera)."""

    embed_dim: int = 144
    num_heads: int = 2
    stages: tuple[int, ...] = (2, 6, 36, 4)
    global_att_blocks: tuple[int, ...] = (23, 33, 43)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)
    window_spec: tuple[int, ...] = (8, 4, 16, 8)
    q_pool: int = 3
    drop_path_rate: float = 0.0


@dataclass
class FusionConfig:
    """Bidirectional hierarchical fusion: the two adapters added to every Hiera block."""

    adapter_ratio: float = 0.25  # adapter hidden width = D * ratio
    heads: int = 4  # heads of both cross-attentions inside the cross adapter
    text_mix: float = 0.2  # new text = (1 - text_mix) * old + text_mix * update
    mlp_adapter_scale: float = 0.5
    # The authors build the text-update path in the last block too but discard its result; we do not build it.
    update_text_in_last_block: bool = False
    # The authors pass padded text positions into the adapters and the decoder text attention unmasked.
    # True masks them (outputs no longer depend on how a caption was padded inside a batch).
    mask_text_padding: bool = False


@dataclass
class SamConfig:
    """SAM2 image side: FPN neck, prompt encoder, mask decoder (+ our text attention)."""

    image_size: int = 1024
    dim: int = 256  # neck d_model = prompt / decoder width = text width t handed to the trunk and decoder
    backbone_stride: int = 16
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    fpn_interp_model: str = "nearest"
    scalp: int = 1
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    iou_prediction_use_sigmoid: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    use_high_res_features: bool = True
    text_attn_heads: int = 8  # the decoder's extra text cross-attention (authors' vlfusion_module)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def check(self) -> None:
        """The SAM2 side works on a grid of backbone_stride-pixel cells: its image size must fit that grid."""
        if self.image_size % self.backbone_stride:
            raise ValueError(f"sam.image_size {self.image_size} is not a multiple of backbone_stride "
                             f"{self.backbone_stride}")


@dataclass
class UnionConfig:
    """Union (vision-language) encoder: [class | visual | text] tokens.

    backend "beit3": torchscale BEiT-3 multiway transformer + XLM-R style sentencepiece tokenizer (`spm_path`).
    backend "clip": open_clip towers built from the open_clip model config `clip_model` (with `clip_overrides`
    merged into it), random weights, plus `joint_layers` transformer layers over [class | visual | text].
    """

    backend: str = "beit3"
    image_size: int = 224
    patch_size: int = 16
    width: int = 1024  # output width of the union encoder (class/visual/text tokens)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    max_text_tokens: int | None = None  # truncate captions (incl. specials); None = positions table limit
    # beit3
    layers: int = 24
    heads: int = 16
    ffn_dim: int = 4096
    vocab_size: int = 64010
    max_text_positions: int = 1024
    spm_path: str | None = None  # sentencepiece model; relative paths are resolved against model_core/assets
    # clip
    clip_model: str = "ViT-B-16"
    clip_overrides: dict[str, Any] = field(default_factory=dict)
    joint_layers: int = 2
    joint_heads: int = 8
    joint_mlp_ratio: float = 4.0


@dataclass
class HeadsConfig:
    mask_prompt_heads: int = 8  # class token attends visual tokens (authors' vmtoken)
    # a presence head on the multimodal class token (model_core/presence.py); the authors' model has none
    presence: bool = False
    # the presence above which a tile holds the referent, calibrated on held-out scenes with absent referents
    # (chosen on validation scenes when the head is trained); 0.5 for a model without calibration
    presence_threshold: float = 0.5


@dataclass
class LossConfig:
    ce_weight: float = 0.9
    dice_weight: float = 0.1
    boundary_weight: float = 0.2
    class_weights: tuple[float, float] = (0.9, 1.1)  # [background, foreground]
    boundary_on: str = "soft"  # "soft": edges of the probability map; "hard": authors' thresholded edges
    # Deep supervision of the pseudo-mask (the union encoder's patch-grid prompt) against the target's coverage of
    # each patch: BCE + Dice, times this weight. 0 = the authors (the pseudo-mask learns only through SAM2's decoder).
    pseudo_weight: float = 0.0


@dataclass
class TrainConfig:
    # The authors freeze the (pretrained) Hiera trunk and FPN neck. Presets trained from scratch unfreeze them.
    freeze_trunk: bool = True
    fast_lr_mult: float = 2.0  # adapters / fusion / pseudo-mask head lr = mult * base lr (authors: 1e-4 vs 5e-5)


class ConfigBase:
    """(De)serialisation and overrides shared by every model family's top-level config (a dataclass)."""

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        # Checkpoints written before issue 18 carry "prob_rule", then a config default (never a trained choice);
        # the probability now follows the family's loss (model_core/decision.py), so the stored value is dropped.
        d = {k: v for k, v in d.items() if k != "prob_rule"}
        return _from_dict(cls, d)

    def replace(self, **overrides):
        """Copy with overrides: `hiera={"embed_dim": 32}` (merged into the sub-config) or `"hiera.embed_dim"=32`."""
        d = self.to_dict()
        for key, value in overrides.items():
            path = key.split(".")
            target = d
            for p in path[:-1]:
                if p not in target or not isinstance(target[p], dict):
                    raise KeyError(f"unknown config field {key!r}")
                target = target[p]
            last = path[-1]
            if last not in target:
                raise KeyError(f"unknown config field {key!r}; known: {sorted(target)}")
            if isinstance(target[last], dict) and isinstance(value, dict) and last != "clip_overrides":
                for k in value:
                    if k not in target[last]:
                        raise KeyError(f"unknown config field {key}.{k}; known: {sorted(target[last])}")
                target[last] = {**target[last], **_to_jsonable(value)}
            else:
                target[last] = _to_jsonable(value)
        return type(self).from_dict(d)


@dataclass
class ModelConfig(ConfigBase):
    name: str = "rs2sam2"
    hiera: HieraConfig = field(default_factory=HieraConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    sam: SamConfig = field(default_factory=SamConfig)
    union: UnionConfig = field(default_factory=UnionConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # precision="auto" on a CPU with native bf16 runs this model in bf16: set per preset where
    # bench/results/cpu_precision.md measured bf16 faster than fp32 with decisions as good (model_core/precision.py)
    cpu_bf16: bool = False


def _to_jsonable(x):
    if isinstance(x, dict):
        return {k: _to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_jsonable(v) for v in x]
    return x


def _from_dict(cls, d):
    hints = typing.get_type_hints(cls)  # resolves the string annotations in the dataclass's own module
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in d.items():
        if k not in names:
            raise KeyError(f"unknown field {k!r} for {cls.__name__}")
        t = hints[k]
        if dataclasses.is_dataclass(t) and isinstance(v, dict):
            kwargs[k] = _from_dict(t, v)
        elif isinstance(v, list) and typing.get_origin(t) is tuple:  # JSON gives tuples back as lists
            kwargs[k] = tuple(v)
        else:
            kwargs[k] = copy.deepcopy(v)
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------------- presets
def _paper() -> ModelConfig:
    """The authors' sizes: BEiT-3 large at 224 + SAM2 hiera-large at 1024 (sam2_hiera_l.yaml)."""
    return ModelConfig(
        name="rs2sam2-paper",
        union=UnionConfig(backend="beit3", spm_path=None),
        fusion=FusionConfig(mask_text_padding=False),
        cpu_bf16=True,
    )


def _clip_b() -> ModelConfig:
    """open_clip ViT-B-16 towers + 2 joint layers, SAM2 hiera-base+ (sam2_hiera_b+.yaml) at 1024."""
    return ModelConfig(
        name="rs2sam2-clip-b",
        hiera=HieraConfig(embed_dim=112, num_heads=2, stages=(2, 3, 16, 3), global_att_blocks=(12, 16, 20),
                          window_pos_embed_bkg_spatial_size=(14, 14), window_spec=(8, 4, 14, 7)),
        union=UnionConfig(backend="clip", clip_model="ViT-B-16", image_size=224, patch_size=16, width=768,
                          mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, joint_layers=2, joint_heads=12),
        fusion=FusionConfig(mask_text_padding=True),
    )


def _tiny() -> ModelConfig:
    """Small BEiT-3 backend (multiway, same code as `paper`) with the tiny in-repo sentencepiece model."""
    return ModelConfig(
        name="rs2sam2-tiny",
        hiera=HieraConfig(embed_dim=32, num_heads=1, stages=(1, 1, 2, 1), global_att_blocks=(3,),
                          window_pos_embed_bkg_spatial_size=(4, 4), window_spec=(8, 4, 4, 4)),
        sam=SamConfig(image_size=256, dim=64, decoder_heads=4, decoder_mlp_dim=256, iou_head_hidden_dim=64,
                      text_attn_heads=4),
        union=UnionConfig(backend="beit3", image_size=64, patch_size=16, width=64, layers=2, heads=4, ffn_dim=256,
                          vocab_size=264, max_text_positions=64, spm_path="tiny_spm.model"),
        heads=HeadsConfig(mask_prompt_heads=4),
        fusion=FusionConfig(mask_text_padding=True),
    )


def _nano() -> ModelConfig:
    """CPU-trainable preset: 256 px SAM2 side, very small Hiera, small open_clip backend (bundled tokenizer)."""
    return ModelConfig(
        name="rs2sam2-nano",
        hiera=HieraConfig(embed_dim=32, num_heads=1, stages=(1, 1, 2, 1), global_att_blocks=(),
                          window_pos_embed_bkg_spatial_size=(4, 4), window_spec=(8, 8, 8, 8)),
        sam=SamConfig(image_size=256, dim=64, decoder_heads=4, decoder_mlp_dim=256, iou_head_hidden_dim=64,
                      text_attn_heads=4),
        union=UnionConfig(
            backend="clip", clip_model="ViT-B-16", image_size=128, patch_size=16, width=128,
            mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, joint_layers=2, joint_heads=4,
            clip_overrides={
                "embed_dim": 128,
                "vision_cfg": {"image_size": 128, "patch_size": 16, "width": 128, "layers": 2, "head_width": 32},
                "text_cfg": {"context_length": 32, "width": 128, "heads": 4, "layers": 2},
            },
        ),
        heads=HeadsConfig(mask_prompt_heads=4),
        fusion=FusionConfig(mask_text_padding=True),
        train=TrainConfig(freeze_trunk=False),
    )


# The RS2-SAM2 family's presets (registered with the family in model.py; model_core.PRESETS holds every family's).
RS2SAM2_PRESETS: dict[str, Callable[[], ModelConfig]] = {"paper": _paper, "clip-b": _clip_b, "tiny": _tiny,
                                                         "nano": _nano}
