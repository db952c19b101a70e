"""Union (vision-language) encoder: one interface, two backends.

`UnionEncoder.forward(pixels, ids, pad)` takes the image already resized/normalised for this encoder and token ids,
and returns `UnionOutput(cls, visual, text, text_pad, grid)`:
  cls     (B, 1, W)  class token c
  visual  (B, N, W)  visual tokens V on a grid[0] x grid[1] patch grid (row-major)
  text    (B, L, W)  text tokens T
  text_pad (B, L) bool, True where the text position is padding

Backends
- "beit3": torchscale's BEiT-3 multiway transformer (as the authors), one joint sequence [CLS | patches | text],
  XLM-R style sentencepiece tokenizer (<s>=0, </s>=2, pad=unk=3, fairseq offset 1).
- "clip": open_clip vision and text towers built from an open_clip model config with random weights (offline),
  then `joint_layers` transformer layers over [class | visual | text]; open_clip's bundled tokenizer.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import UnionConfig

ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass
class UnionOutput:
    cls: torch.Tensor
    visual: torch.Tensor
    text: torch.Tensor
    text_pad: torch.Tensor
    grid: tuple[int, int]


def resolve_asset(path: str | None) -> Path | None:
    if path is None:
        return None
    p = Path(os.path.expanduser(path))
    if not p.is_absolute() and not p.exists():
        p = ASSETS / p
    return p


# ------------------------------------------------------------------------------------------------ tokenizers
class XLMRTokenizer:
    """XLM-R style sentencepiece tokenizer as the authors use it (transformers' slow XLMRobertaTokenizer on beit3.spm,
    pad token overwritten to unk): ids = [<s>=0] + (piece id + 1, or 3 for sentencepiece's unk) + [</s>=2];
    batches right-padded with 3; padding = (id == 3) (so a genuine <unk> is treated as padding, as theirs)."""

    BOS, PAD_ORIG, EOS, UNK = 0, 1, 2, 3
    OFFSET = 1

    def __init__(self, spm_path=None, max_tokens: int | None = None, proto: bytes | None = None):
        import sentencepiece as spm

        if proto is None:
            path = Path(spm_path)
            if not path.is_file():
                raise FileNotFoundError(f"sentencepiece model not found: looked for {path.resolve()}")
            proto = path.read_bytes()
        self.path = spm_path
        self.proto = proto
        self.sp = spm.SentencePieceProcessor(model_proto=proto)
        self.max_tokens = max_tokens
        self.pad_id = self.UNK

    def full_ids(self, text: str) -> list[int]:
        """The ids before truncation to max_tokens (specials included)."""
        pieces = self.sp.encode(text, out_type=int)
        return [self.BOS] + [p + self.OFFSET if p != 0 else self.UNK for p in pieces] + [self.EOS]

    def encode(self, text: str) -> list[int]:
        ids = self.full_ids(text)
        if self.max_tokens is not None and len(ids) > self.max_tokens:
            ids = ids[: self.max_tokens - 1] + [self.EOS]
        return ids

    def token_count(self, text: str) -> int:
        """Tokens the text needs, specials included (compare with ``window``: beyond it the text is cut)."""
        return len(self.full_ids(text))

    @property
    def window(self) -> int | None:
        return self.max_tokens

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = [self.encode(t) for t in texts]
        n = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), n), self.pad_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        return ids, ids == self.pad_id


class ClipTokenizer:
    """open_clip's bundled tokenizer (no file needed for the OpenAI BPE models); trims batch padding."""

    def __init__(self, model_name: str, context_length: int):
        import open_clip

        self.tok = open_clip.get_tokenizer(model_name, context_length=context_length)
        self.context_length = context_length
        self.pad_id = 0

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.tok(list(texts), context_length=self.context_length)
        eot = getattr(self.tok, "eot_token_id", None)
        if eot is not None and bool((ids == eot).any(1).all()):
            # padding = everything after the first end-of-text token (id 0 is also a real BPE token, "!")
            first_eot = (ids == eot).int().argmax(1, keepdim=True)
            pad = torch.arange(ids.shape[1]).unsqueeze(0) > first_eot
        else:
            pad = ids == self.pad_id
        n = int((~pad).sum(1).max().item()) if ids.numel() else 1
        ids, pad = ids[:, : max(n, 1)], pad[:, : max(n, 1)]
        return ids, pad

    def token_count(self, text: str) -> int:
        """Tokens the text needs, start/end included (compare with ``window``: beyond it the text is cut)."""
        tok = self.tok
        if getattr(tok, "reduction_fn", None) is None and hasattr(tok, "encode") and hasattr(tok, "sot_token_id"):
            return len(tok.encode(text)) + 2
        ids = tok([text], context_length=4 * len(text) + 8)  # other open_clip tokenizers: room for every token
        return int((ids != self.pad_id).sum().item())

    @property
    def window(self) -> int | None:
        return self.context_length


# ------------------------------------------------------------------------------------------------ backends
class Beit3Backend(nn.Module):
    def __init__(self, cfg: UnionConfig):
        super().__init__()
        from torchscale.architecture.config import EncoderConfig
        from torchscale.model.BEiT3 import BEiT3

        args = EncoderConfig(
            img_size=cfg.image_size, patch_size=cfg.patch_size, vocab_size=cfg.vocab_size, multiway=True,
            layernorm_embedding=False, normalize_output=True, no_output_layer=True,
            encoder_embed_dim=cfg.width, encoder_attention_heads=cfg.heads, encoder_ffn_embed_dim=cfg.ffn_dim,
            encoder_layers=cfg.layers, max_source_positions=cfg.max_text_positions,
        )
        self.beit3 = BEiT3(args)
        self.grid = (cfg.image_size // cfg.patch_size, cfg.image_size // cfg.patch_size)
        # The vision mask token is for masked image modelling only: never used here.
        self.beit3.vision_embed.mask_token.requires_grad_(False)

    def forward(self, pixels, ids, pad) -> UnionOutput:
        out = self.beit3(textual_tokens=ids, visual_tokens=pixels, text_padding_position=pad)
        x = out["encoder_out"]
        n = self.grid[0] * self.grid[1]
        return UnionOutput(x[:, 0:1], x[:, 1 : 1 + n], x[:, 1 + n :], pad, self.grid)


def build_open_clip(cfg: UnionConfig) -> nn.Module:
    """An open_clip CLIP model from its bundled config (+ cfg.clip_overrides), random weights, no network."""
    import open_clip
    from open_clip.model import CLIP

    base = open_clip.get_model_config(cfg.clip_model)
    if base is None:
        raise ValueError(f"open_clip has no bundled model config {cfg.clip_model!r}")
    model_cfg = deep_merge(copy.deepcopy(base), cfg.clip_overrides)
    if model_cfg.get("custom_text") or "hf_model_name" in model_cfg.get("text_cfg", {}):
        raise NotImplementedError(f"open_clip config {cfg.clip_model!r} uses a custom/HF text tower; "
                                  "only open_clip's native towers are supported by the clip backend")
    vc = model_cfg.get("vision_cfg", {})
    if vc.get("timm_model_name"):
        raise NotImplementedError(f"open_clip config {cfg.clip_model!r} uses a timm vision tower; "
                                  "only open_clip's native VisionTransformer is supported by the clip backend")
    model_cfg.pop("custom_text", None)
    keep = {k: model_cfg[k] for k in ("embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "init_logit_scale",
                                      "init_logit_bias") if k in model_cfg}
    return CLIP(**keep)


def deep_merge(a: dict, b: dict) -> dict:
    """b merged into a, recursively for dicts (a is changed and returned)."""
    for k, v in (b or {}).items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            deep_merge(a[k], v)
        else:
            a[k] = copy.deepcopy(v)
    return a


class JointLayer(nn.Module):
    """Pre-LN transformer layer with a key padding mask."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x, key_pad):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, key_padding_mask=key_pad, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ClipBackend(nn.Module):
    def __init__(self, cfg: UnionConfig):
        super().__init__()
        self.clip = build_open_clip(cfg)
        visual = self.clip.visual
        if getattr(visual, "attn_pool", None) is not None:
            raise NotImplementedError("open_clip vision towers with attention pooling are not supported")
        img = visual.image_size if isinstance(visual.image_size, (tuple, list)) else (visual.image_size,) * 2
        patch = visual.patch_size if isinstance(visual.patch_size, (tuple, list)) else (visual.patch_size,) * 2
        if tuple(img) != (cfg.image_size, cfg.image_size) or tuple(patch) != (cfg.patch_size, cfg.patch_size):
            raise ValueError(f"union config image_size/patch_size {cfg.image_size}/{cfg.patch_size} disagree with "
                             f"the open_clip vision config {img}/{patch}")
        self.grid = (img[0] // patch[0], img[1] // patch[1])
        v_width = visual.conv1.out_channels
        t_width = self.clip.token_embedding.embedding_dim
        w = cfg.width
        self.vision_in = nn.Linear(v_width, w)
        self.text_in = nn.Linear(t_width, w)
        self.type_embed = nn.Parameter(torch.zeros(3, w))  # class / visual / text
        nn.init.normal_(self.type_embed, std=0.02)
        self.layers = nn.ModuleList(JointLayer(w, cfg.joint_heads, cfg.joint_mlp_ratio)
                                    for _ in range(cfg.joint_layers))
        self.norm = nn.LayerNorm(w)
        # Parts of the CLIP model that token-level features never use: the contrastive heads.
        for p in (self.clip.logit_scale, getattr(self.clip, "logit_bias", None), visual.proj,
                  self.clip.text_projection):
            if isinstance(p, nn.Parameter):
                p.requires_grad_(False)
            elif isinstance(p, nn.Module):
                p.requires_grad_(False)

    def encode_image(self, pixels):
        v = self.clip.visual
        x = v._embeds(pixels)
        x = v.transformer(x)
        return v.ln_post(x)  # (B, 1 + N, Wv)

    def encode_text(self, ids, pad):
        c = self.clip
        L = ids.shape[1]
        x = c.token_embedding(ids) + c.positional_embedding[:L]
        mask = c.attn_mask[:L, :L] if c.attn_mask is not None else None
        x = c.transformer(x, attn_mask=mask)
        return c.ln_final(x)  # (B, L, Wt)

    def forward(self, pixels, ids, pad) -> UnionOutput:
        v = self.vision_in(self.encode_image(pixels))
        t = self.text_in(self.encode_text(ids, pad))
        n = v.shape[1] - 1
        x = torch.cat([v[:, :1] + self.type_embed[0], v[:, 1:] + self.type_embed[1], t + self.type_embed[2]], 1)
        key_pad = torch.cat([torch.zeros(pad.shape[0], 1 + n, dtype=torch.bool, device=pad.device), pad], 1)
        for layer in self.layers:
            x = layer(x, key_pad)
        x = self.norm(x)
        return UnionOutput(x[:, 0:1], x[:, 1 : 1 + n], x[:, 1 + n :], pad, self.grid)


class UnionEncoder(nn.Module):
    """Dispatches to a backend; owns the tokenizer (built lazily, so a model can be built without its files)."""

    def __init__(self, cfg: UnionConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.backend == "beit3":
            self.backend = Beit3Backend(cfg)
        elif cfg.backend == "clip":
            self.backend = ClipBackend(cfg)
        else:
            raise ValueError(f"unknown union-encoder backend {cfg.backend!r} (beit3 | clip)")
        self.grid = self.backend.grid
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            cfg = self.cfg
            if cfg.backend == "beit3":
                path = resolve_asset(cfg.spm_path)
                if path is None:
                    raise FileNotFoundError(
                        "this BEiT-3 model has no sentencepiece tokenizer file: set union.spm_path "
                        "(e.g. beit3.spm) or load a checkpoint directory that ships sentencepiece.bpe.model")
                self._tokenizer = XLMRTokenizer(path, max_tokens=self._xlmr_max_tokens())
            else:
                ctx = self.backend.clip.context_length
                if cfg.max_text_tokens:
                    ctx = min(ctx, cfg.max_text_tokens)
                self._tokenizer = ClipTokenizer(cfg.clip_model, ctx)
        return self._tokenizer

    def _xlmr_max_tokens(self) -> int:
        limit = self.cfg.max_text_positions - 2
        return min(self.cfg.max_text_tokens, limit) if self.cfg.max_text_tokens else limit

    def set_tokenizer(self, tokenizer):
        self._tokenizer = tokenizer

    def spm_proto(self) -> bytes | None:
        """A beit3 backend's sentencepiece model (the tokenizer's in use, else the configured file's), for a
        checkpoint to carry; None for the clip backend (open_clip bundles its tokenizer) or when there is none."""
        if self.cfg.backend != "beit3":
            return None
        if self._tokenizer is not None and getattr(self._tokenizer, "proto", None) is not None:
            return self._tokenizer.proto
        p = resolve_asset(self.cfg.spm_path)
        return p.read_bytes() if p is not None and p.is_file() else None

    def set_spm_proto(self, proto: bytes) -> None:
        """Tokenize with this sentencepiece model (a checkpoint's own copy)."""
        self._tokenizer = XLMRTokenizer(proto=proto, max_tokens=self._xlmr_max_tokens())

    def tokenize(self, texts: Sequence[str], device=None):
        ids, pad = self.tokenizer(texts)
        return ids.to(device), pad.to(device)

    def preprocess(self, pixels01: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [0,1] -> resized (bilinear, antialias) to the encoder size, normalised."""
        s = self.cfg.image_size
        x = pixels01
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x.float(), size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, pixels, ids, pad) -> UnionOutput:
        return self.backend(pixels, ids, pad)
