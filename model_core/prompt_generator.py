"""Prompts for SAM2 from the union encoder, and the mask decoder's extra text attention.

- `MaskPromptGenerator` (authors' vmtoken / mask_linear / mask_product): the class token attends the visual tokens,
  the result gates the class token, a linear layer gives m; pseudo-mask = sigmoid(score(V * m)) on the union
  encoder's patch grid, resized (bilinear, antialias) to SAM2's mask-input size and given to the prompt encoder
  *as a probability* (stock SAM takes logits).
- `SparsePromptMLP` (authors' text_hidden_fcs): c -> Linear, ReLU, Linear -> one sparse prompt token.
- `TextMaskDecoder`: sam2's MaskDecoder whose image embedding is gated by a cross-attention to the text t before the
  dense prompt is added: emb = emb * MHA(query emb + PE, key/value t) (authors' vlfusion_module; the placement
  before the dense-prompt add is the one that reproduces the golden fixture's low-res logits).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from sam2.modeling.sam.mask_decoder import MaskDecoder


class MaskPromptGenerator(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.proj = nn.Linear(width, width)
        self.score = nn.Linear(width, 1)

    def forward(self, cls: torch.Tensor, visual: torch.Tensor, grid: tuple[int, int]):
        """cls (B,1,W), visual (B,N,W) -> (probability, logit), each (B,1,gh,gw)."""
        g = cls * self.attn(cls, visual, visual, need_weights=False)[0]
        m = self.proj(g)  # (B,1,W)
        logit = self.score(visual * m)  # (B,N,1)
        B = visual.shape[0]
        logit = logit.transpose(1, 2).reshape(B, 1, grid[0], grid[1])
        return torch.sigmoid(logit), logit

    @staticmethod
    def to_mask_input(prob: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Resize the pseudo-mask probability to SAM2's mask-input size (bilinear, antialias, as the authors)."""
        if tuple(prob.shape[-2:]) == tuple(size):
            return prob
        # antialiased resize has no bf16/fp16 CPU kernel: compute it in float32
        return F.interpolate(prob.float(), size=size, mode="bilinear", align_corners=False, antialias=True)


class SparsePromptMLP(nn.Sequential):
    def __init__(self, width: int, out_dim: int):
        super().__init__(nn.Linear(width, width), nn.ReLU(inplace=False), nn.Linear(width, out_dim))


class TextMaskDecoder(MaskDecoder):
    """sam2's MaskDecoder + a text cross-attention that gates the image embedding (multiplicative)."""

    def __init__(self, *, text_attn_heads: int, **kwargs):
        super().__init__(**kwargs)
        self.text_attn = nn.MultiheadAttention(self.transformer_dim, text_attn_heads, batch_first=True)

    def forward(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                multimask_output: bool = False, repeat_image: bool = False, high_res_features=None,
                text: torch.Tensor | None = None, text_pad: torch.Tensor | None = None):
        """MaskDecoder.forward with the text (B,L,C) (+ optional padding mask) for the gating."""
        masks, iou_pred, mask_tokens_out, object_score_logits = self.predict_masks(
            image_embeddings=image_embeddings, image_pe=image_pe, sparse_prompt_embeddings=sparse_prompt_embeddings,
            dense_prompt_embeddings=dense_prompt_embeddings, repeat_image=repeat_image,
            high_res_features=high_res_features, text=text, text_pad=text_pad)
        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou_pred = self._dynamic_multimask_via_stability(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, 0:1], iou_pred[:, 0:1]
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            sam_tokens_out = mask_tokens_out[:, 1:]
        else:
            sam_tokens_out = mask_tokens_out[:, 0:1]
        return masks, iou_pred, sam_tokens_out, object_score_logits

    def gate_with_text(self, src: torch.Tensor, pos: torch.Tensor, text: torch.Tensor,
                       text_pad: torch.Tensor | None) -> torch.Tensor:
        b, c, h, w = src.shape
        q = src.flatten(2).transpose(1, 2)  # (B, HW, C)
        qp = pos.flatten(2).transpose(1, 2)
        out = self.text_attn(q + qp, text, text, key_padding_mask=text_pad, need_weights=False)[0]
        return (q * out).transpose(1, 2).reshape(b, c, h, w)

    def predict_masks(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                      repeat_image, high_res_features=None, text=None, text_pad=None):
        # sam2's MaskDecoder.predict_masks with the text gating inserted before the dense prompt is added.
        s = 0
        if self.pred_obj_scores:
            output_tokens = torch.cat([self.obj_score_token.weight, self.iou_token.weight,
                                       self.mask_tokens.weight], dim=0)
            s = 1
        else:
            output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(sparse_prompt_embeddings.size(0), -1, -1)
        tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)

        if repeat_image:
            src = torch.repeat_interleave(image_embeddings, tokens.shape[0], dim=0)
        else:
            assert image_embeddings.shape[0] == tokens.shape[0]
            src = image_embeddings
        assert image_pe.size(0) == 1, "image_pe should have size 1 in batch dim (from `get_dense_pe()`)"
        pos_src = torch.repeat_interleave(image_pe, tokens.shape[0], dim=0)
        if text is not None:
            src = self.gate_with_text(src, pos_src, text, text_pad)
        src = src + dense_prompt_embeddings
        b, c, h, w = src.shape

        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, s, :]
        mask_tokens_out = hs[:, s + 1 : (s + 1 + self.num_mask_tokens), :]

        src = src.transpose(1, 2).view(b, c, h, w)
        if not self.use_high_res_features:
            upscaled_embedding = self.output_upscaling(src)
        else:
            dc1, ln1, act1, dc2, act2 = self.output_upscaling
            feat_s0, feat_s1 = high_res_features
            upscaled_embedding = act1(ln1(dc1(src) + feat_s1))
            upscaled_embedding = act2(dc2(upscaled_embedding) + feat_s0)

        hyper_in_list: list[torch.Tensor] = []
        for i in range(self.num_mask_tokens):
            hyper_in_list.append(self.output_hypernetworks_mlps[i](mask_tokens_out[:, i, :]))
        hyper_in = torch.stack(hyper_in_list, dim=1)
        b, c, h, w = upscaled_embedding.shape
        masks = (hyper_in @ upscaled_embedding.view(b, c, h * w)).view(b, -1, h, w)

        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0, :])
        else:
            object_score_logits = 10.0 * iou_pred.new_ones(iou_pred.shape[0], 1)
        return masks, iou_pred, mask_tokens_out, object_score_logits
