"""LoRA (Hu et al. 2021) for nn.Linear and nn.MultiheadAttention, in place, keeping the base modules' state-dict keys.

A module is converted by swapping its class for a subclass and registering two new parameters, so a stock checkpoint
(SAM2 .pt, open_clip weights) still loads into `...qkv.weight` / `...attn.in_proj_weight` unchanged, and the only new
keys end in `.lora_A` / `.lora_B` (plus `lora_out_A/B` for a MultiheadAttention's output projection).

    y = base(x) + (alpha / r) * B(A(dropout(x)))      A: (r, in) Kaiming-uniform, B: (out, r) zeros

B starts at zero, so a freshly converted model computes exactly what it computed before.
`apply_lora(root, include=callable(name, module) -> bool, r, alpha, dropout)` converts the matching submodules and
returns their names; `lora_parameter_names(model)` lists the LoRA tensors.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["LoRALinear", "LoRAMultiheadAttention", "apply_lora", "is_lora_name", "lora_parameter_names"]


def is_lora_name(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last.startswith("lora_")


def _init_pair(module: nn.Module, prefix: str, in_f: int, out_f: int, r: int, ref: torch.Tensor):
    a = nn.Parameter(torch.empty(r, in_f, dtype=ref.dtype, device=ref.device))
    b = nn.Parameter(torch.zeros(out_f, r, dtype=ref.dtype, device=ref.device))
    if not a.is_meta:
        nn.init.kaiming_uniform_(a, a=math.sqrt(5))
    module.register_parameter(prefix + "A", a)
    module.register_parameter(prefix + "B", b)


class LoRALinear(nn.Linear):
    """nn.Linear + a low-rank update. Made from an existing Linear by `LoRALinear.convert(linear, r, alpha)`."""

    lora_r: int
    lora_scale: float

    @classmethod
    def convert(cls, lin: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> LoRALinear:
        if not isinstance(lin, nn.Linear):
            raise TypeError(f"LoRALinear needs an nn.Linear, got {type(lin).__name__}")
        if isinstance(lin, LoRALinear):
            return lin
        lin.__class__ = cls
        lin.lora_r, lin.lora_scale = int(r), float(alpha) / float(r)
        lin.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        _init_pair(lin, "lora_", lin.in_features, lin.out_features, r, lin.weight)
        return lin

    def forward(self, x):
        out = F.linear(x, self.weight, self.bias)
        a, b = self.lora_A.to(x.dtype), self.lora_B.to(x.dtype)
        return out + F.linear(F.linear(self.lora_dropout(x), a), b) * self.lora_scale

    def extra_repr(self):
        return super().extra_repr() + f", lora_r={self.lora_r}, lora_scale={self.lora_scale:g}"


class LoRAMultiheadAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention (packed in-projection, no kdim/vdim) + low-rank updates of the in-projection (q, k, v)
    and the output projection. Its forward calls F.multi_head_attention_forward with the updated weights (the
    module reads its weights directly, so a wrapped Linear would be bypassed)."""

    @classmethod
    def convert(cls, mha: nn.MultiheadAttention, r: int, alpha: float, dropout: float = 0.0):
        if isinstance(mha, LoRAMultiheadAttention):
            return mha
        if not mha._qkv_same_embed_dim or mha.in_proj_weight is None:
            raise NotImplementedError("LoRA on nn.MultiheadAttention needs the packed in-projection (kdim = vdim = "
                                      "embed_dim)")
        mha.__class__ = cls
        mha.lora_r, mha.lora_scale = int(r), float(alpha) / float(r)
        mha.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        e = mha.embed_dim
        _init_pair(mha, "lora_", e, 3 * e, r, mha.in_proj_weight)
        _init_pair(mha, "lora_out_", e, e, r, mha.in_proj_weight)
        return mha

    def _delta(self, a, b):
        return (b @ a) * self.lora_scale

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if not isinstance(self.lora_dropout, nn.Identity) and self.training:
            # dropout on the LoRA input is not expressible as a weight delta: keep it simple and explicit
            raise NotImplementedError("LoRA dropout is not supported on MultiheadAttention; use dropout=0")
        w_in = self.in_proj_weight + self._delta(self.lora_A, self.lora_B).to(self.in_proj_weight.dtype)
        w_out = self.out_proj.weight + self._delta(self.lora_out_A, self.lora_out_B).to(self.out_proj.weight.dtype)
        if self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        out, weights = F.multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, w_in, self.in_proj_bias, self.bias_k, self.bias_v,
            self.add_zero_attn, self.dropout, w_out, self.out_proj.bias, training=self.training,
            key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask,
            average_attn_weights=average_attn_weights, is_causal=is_causal)
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, weights


def apply_lora(root: nn.Module, include: Callable[[str, nn.Module], bool], r: int = 16, alpha: float = 16.0,
               dropout: float = 0.0) -> list[str]:
    """Convert every nn.Linear / nn.MultiheadAttention submodule of `root` for which include(name, module) is true.
    The Linear inside a converted MultiheadAttention (out_proj) is covered by the attention's own update."""
    if r <= 0:
        return []
    done: list[str] = []
    skip_prefixes: list[str] = []
    for name, mod in list(root.named_modules()):
        if any(name.startswith(p) for p in skip_prefixes):
            continue
        if isinstance(mod, nn.MultiheadAttention) and include(name, mod):
            LoRAMultiheadAttention.convert(mod, r, alpha, dropout)
            skip_prefixes.append(name + ".")
            done.append(name)
        elif type(mod) is nn.Linear and include(name, mod):
            LoRALinear.convert(mod, r, alpha, dropout)
            done.append(name)
    return done


def lora_parameter_names(model: nn.Module) -> list[str]:
    return [n for n, _ in model.named_parameters() if is_lora_name(n)]
