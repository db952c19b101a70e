"""Bidirectional hierarchical fusion: text adapters inside every block of SAM2's Hiera trunk.

Built on the sam2 package's own modules (no vendored copy): `FusionBlock` subclasses
`sam2.modeling.backbones.hieradet.MultiScaleBlock` (same submodules and parameter names, plus two adapters) and
extends its forward; `FusionHiera` subclasses `Hiera` and hands the running text from block to block;
`FusionImageEncoder` subclasses `ImageEncoder` to pass the text through to the trunk.

Per block with output width D (authors' Space_Adapter / MLP_Adapter, official_contract.md section 3):
- cross adapter on the attention branch, after window un-partition and before the residual add:
    h = GELU(fc1(attn_out))                      (D -> D*ratio)
    tt = text_in(text)                           (text width -> D*ratio)
    h = h + MHA(query h, key/value tt)           (visual attends text, additive)
    tt' = tt + MHA(query tt, key/value h)        (text attends visual, additive)
    text = (1 - mix) * text + mix * text_out(tt')
    attn_out = attn_out + fc2(h)
- MLP adapter beside the block MLP on the same normed input: x = x + mlp(n) + scale * fc2(GELU(fc1(n))).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from sam2.modeling.backbones.hieradet import Hiera, MultiScaleBlock, do_pool
from sam2.modeling.backbones.image_encoder import ImageEncoder
from sam2.modeling.backbones.utils import window_partition, window_unpartition

from .config import FusionConfig


class MLPAdapter(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class CrossAdapter(nn.Module):
    """Text <-> visual cross adapter on a block's attention output (authors' Space_Adapter)."""

    def __init__(self, dim: int, text_dim: int, cfg: FusionConfig, update_text: bool = True):
        super().__init__()
        hidden = int(dim * cfg.adapter_ratio)
        if hidden % cfg.heads:
            raise ValueError(f"adapter width {hidden} (block width {dim} x {cfg.adapter_ratio}) is not divisible by "
                             f"{cfg.heads} heads")
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.text_in = nn.Linear(text_dim, hidden)
        self.visual_attn = nn.MultiheadAttention(hidden, cfg.heads, batch_first=True)  # visual queries text
        self.update_text = update_text
        if update_text:
            self.text_attn = nn.MultiheadAttention(hidden, cfg.heads, batch_first=True)  # text queries visual
            self.text_out = nn.Linear(hidden, text_dim)
        self.text_mix = cfg.text_mix

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_pad: torch.Tensor | None):
        # x: (B, H, W, D) attention output; text: (B, L, text_dim)
        B, H, W, _ = x.shape
        h = self.act(self.fc1(x)).reshape(B, H * W, -1)
        tt = self.text_in(text)
        h = h + self.visual_attn(h, tt, tt, key_padding_mask=text_pad, need_weights=False)[0]
        if self.update_text:
            upd = tt + self.text_attn(tt, h, h, need_weights=False)[0]
            text = (1.0 - self.text_mix) * text + self.text_mix * self.text_out(upd)
        x = x + self.fc2(h).reshape(B, H, W, -1)
        return x, text


class FusionBlock(MultiScaleBlock):
    """sam2's MultiScaleBlock + cross adapter (attention branch) + MLP adapter (beside the MLP)."""

    def __init__(self, *, dim, dim_out, num_heads, drop_path=0.0, q_stride=None, window_size=0,
                 text_dim: int, fusion: FusionConfig, update_text: bool = True):
        super().__init__(dim=dim, dim_out=dim_out, num_heads=num_heads, drop_path=drop_path, q_stride=q_stride,
                         window_size=window_size)
        self.cross_adapter = CrossAdapter(dim_out, text_dim, fusion, update_text=update_text)
        self.mlp_adapter = MLPAdapter(dim_out, int(dim_out * fusion.adapter_ratio))
        self.mlp_adapter_scale = fusion.mlp_adapter_scale

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_pad: torch.Tensor | None = None):
        # Same steps as MultiScaleBlock.forward, with the adapters inserted.
        shortcut = x  # B, H, W, C
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = do_pool(self.proj(x), self.pool)

        window_size = self.window_size
        if window_size > 0:
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, window_size)

        x = self.attn(x)
        if self.q_stride:
            window_size = self.window_size // self.q_stride[0]
            H, W = shortcut.shape[1:3]
            pad_h = (window_size - H % window_size) % window_size
            pad_w = (window_size - W % window_size) % window_size
            pad_hw = (H + pad_h, W + pad_w)

        if self.window_size > 0:
            x = window_unpartition(x, window_size, pad_hw, (H, W))

        x, text = self.cross_adapter(x, text, text_pad)
        x = shortcut + self.drop_path(x)
        n = self.norm2(x)
        x = x + self.drop_path(self.mlp(n)) + self.mlp_adapter_scale * self.mlp_adapter(n)
        return x, text


class FusionHiera(Hiera):
    """sam2's Hiera with every block replaced by a FusionBlock of the same configuration."""

    def __init__(self, *, text_dim: int, fusion: FusionConfig, **hiera_kwargs):
        super().__init__(**hiera_kwargs)
        blocks = []
        n = len(self.blocks)
        for i, b in enumerate(self.blocks):
            drop = b.drop_path.drop_prob if hasattr(b.drop_path, "drop_prob") else 0.0
            blocks.append(FusionBlock(
                dim=b.dim, dim_out=b.dim_out, num_heads=b.attn.num_heads, drop_path=drop, q_stride=b.q_stride,
                window_size=b.window_size, text_dim=text_dim, fusion=fusion,
                update_text=(i < n - 1) or fusion.update_text_in_last_block,
            ))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_pad: torch.Tensor | None = None
                ) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        x = x + self._get_pos_embed(x.shape[1:3])
        outputs = []
        for i, blk in enumerate(self.blocks):
            x, text = blk(x, text, text_pad)
            if (i == self.stage_ends[-1]) or (i in self.stage_ends and self.return_interm_layers):
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs

    def stock_parameters(self):
        """(name, param) of the stock Hiera weights (everything but the adapters)."""
        return [(n, p) for n, p in self.named_parameters() if ".cross_adapter." not in n and ".mlp_adapter." not in n]


class FusionImageEncoder(ImageEncoder):
    """sam2's ImageEncoder (trunk + FPN neck) whose trunk also takes the text."""

    def forward(self, sample: torch.Tensor, text: torch.Tensor, text_pad: torch.Tensor | None = None):
        features, pos = self.neck(self.trunk(sample, text, text_pad))
        if self.scalp > 0:
            features, pos = features[: -self.scalp], pos[: -self.scalp]
        return {"vision_features": features[-1], "vision_pos_enc": pos, "backbone_fpn": features}
