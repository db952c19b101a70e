"""RSRefSeg (Liu et al. 2025, arXiv 2501.06809) on SAM2: SigLIP text filters SigLIP visual features into SAM prompts.

    V (B,N,E)     = the image tower's patch tokens (SigLIP: 27x27 x 1152), in the towers' joint space
    words (B,L,E) = the text tower's tokens through its projection; s (B,E) = the pooled sentence embedding
    word filter   : a_w = sigmoid(exp(scale) * cos(V, w) + bias), local = (V + mean_w(a_w * V)) / 2
    sentence      : G = exp(scale) * cos(V, s) + bias (logits), global = sigmoid(G) * V
    sparse prompt : [local | global | V] -> 1x1 conv to the decoder width + SAM2's positional grid
                    -> 3x3/2 conv -> 3x3/2 conv -> 1x1 conv -> sparse_grid**2 tokens
    dense prompt  : G resized (bilinear) to SAM2's mask-input size, as logits (stock SAM)
    SAM2 (the sam2 package's Hiera, FPN neck, prompt encoder, mask decoder), single mask.

scale and bias are the towers' own (open_clip `logit_scale`, `logit_bias`). Trained: LoRA on the Hiera attention and
on the attention of both towers, the prompter, the prompt encoder's mask path and the mask decoder. Loss: 5 x BCE
(Dice optional).

The image features (V and SAM2's image embeddings) do not depend on the text, so the model splits:
`encode_images(pixels) -> dict of tensors` and `decode_features(features, texts) -> logits`; `features_reusable`
is True and `predict_masks(p, t) == decode_features(encode_images(p), t)` exactly.

The end of the module registers the RSRefSeg family (model_core/families.py).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from sam2.modeling.backbones.hieradet import Hiera
from sam2.modeling.backbones.image_encoder import FpnNeck, ImageEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine
from sam2.modeling.sam.mask_decoder import MaskDecoder
from sam2.modeling.sam.prompt_encoder import PromptEncoder
from sam2.modeling.sam.transformer import TwoWayTransformer

from .checkpoints import open_clip_folder, read_state_dict, resolve_open_clip_file, strict_fill
from .decision import prob_from_logits
from .families import ModelFamily, register_family
from .lora import apply_lora, is_lora_name
from .rsrefseg_config import RSRefSegConfig, TowersConfig, rsrefseg_preset, rsrefseg_tiny_preset
from .sam2_weights import load_sam2_weights

SPM_NAMES = ("spiece.model", "sentencepiece.model", "tokenizer.model")


# ================================================================================================ tokenizers
class SiglipSpmTokenizer:
    """open_clip's SigLipTokenizer without transformers or the network: T5 sentencepiece ids of
    canonicalize_text(basic_clean(text)), then eos (1), truncated to the context, right-padded with pad (1) to the
    full context. Padding mask: positions after the first eos."""

    EOS, PAD = 1, 1

    def __init__(self, path=None, context_length: int = 64, proto: bytes | None = None):
        import sentencepiece as spm

        if proto is None:
            proto = Path(path).read_bytes()
        self.proto = proto
        self.sp = spm.SentencePieceProcessor(model_proto=proto)
        self.context_length = int(context_length)

    @classmethod
    def from_dir(cls, directory, context_length: int):
        if directory is None:
            raise FileNotFoundError(
                "this RSRefSeg model has no tokenizer: SigLIP's sentencepiece file is needed (one of "
                f"{', '.join(SPM_NAMES)}); put it beside the open_clip weights and load them with "
                "load_model(DIR, base='rsrefseg'), or set towers.tokenizer_dir")
        d = Path(directory).expanduser()
        for n in SPM_NAMES:
            if (d / n).is_file():
                return cls(d / n, context_length)
        have = ", ".join(sorted(p.name for p in d.iterdir())) if d.is_dir() else "the folder does not exist"
        raise FileNotFoundError(f"SigLIP tokenizer missing: looked for {' or '.join(SPM_NAMES)} in {d.resolve()} "
                                f"(found: {have or 'nothing'})")

    def token_count(self, text: str) -> int:
        """Tokens the text needs, eos included (compare with ``window``: beyond it the text is cut)."""
        from open_clip.tokenizer import basic_clean, canonicalize_text

        return len(self.sp.encode(canonicalize_text(basic_clean(text)), out_type=int)) + 1

    @property
    def window(self) -> int:
        return self.context_length

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        from open_clip.tokenizer import basic_clean, canonicalize_text

        n = self.context_length
        ids = torch.full((len(texts), n), self.PAD, dtype=torch.long)
        pad = torch.ones((len(texts), n), dtype=torch.bool)
        for i, t in enumerate(texts):
            seq = self.sp.encode(canonicalize_text(basic_clean(t)), out_type=int)[: n - 1] + [self.EOS]
            ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            pad[i, : len(seq)] = False
        return ids, pad


# ================================================================================================ towers
def build_open_clip_towers(tc: TowersConfig) -> nn.Module:
    """An open_clip model (CLIP, or CustomTextCLIP for SigLIP's timm image tower) from its bundled config merged with
    tc.clip_overrides; random weights, no download (timm_model_pretrained is forced off)."""
    import open_clip
    from open_clip.model import CLIP, CustomTextCLIP

    from .union_encoder import deep_merge

    base = open_clip.get_model_config(tc.clip_model)
    if base is None:
        raise ValueError(f"open_clip has no bundled model config {tc.clip_model!r}")
    cfg = deep_merge(copy.deepcopy(base), tc.clip_overrides)
    if "hf_model_name" in cfg.get("text_cfg", {}):
        raise NotImplementedError(f"{tc.clip_model!r} uses a Hugging Face text tower; only open_clip's own text "
                                  "transformer is supported")
    vc = cfg.get("vision_cfg", {})
    if vc.get("timm_model_name"):
        vc["timm_model_pretrained"] = False
    keep = {k: cfg[k] for k in ("embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "init_logit_scale",
                                "init_logit_bias") if k in cfg}
    cls = CustomTextCLIP if cfg.get("custom_text") else CLIP
    return cls(**keep)


class Towers(nn.Module):
    """Patch tokens and word/sentence embeddings from an open_clip model, in its joint (contrastive) space."""

    def __init__(self, tc: TowersConfig):
        super().__init__()
        self.cfg = tc
        self.clip = build_open_clip_towers(tc)
        v = self.clip.visual
        self.timm = hasattr(v, "trunk")
        if self.timm:
            pe = v.trunk.patch_embed
            img, patch = tuple(pe.img_size), tuple(pe.patch_size)
            width = v.trunk.num_features
        else:
            img = v.image_size if isinstance(v.image_size, (tuple, list)) else (v.image_size,) * 2
            patch = v.patch_size if isinstance(v.patch_size, (tuple, list)) else (v.patch_size,) * 2
            width = v.proj.shape[1] if v.proj is not None else v.conv1.out_channels
        if tuple(img) != (tc.image_size,) * 2 or tuple(patch) != (tc.patch_size,) * 2:
            raise ValueError(f"towers image_size/patch_size {tc.image_size}/{tc.patch_size} disagree with the open_clip "
                             f"vision config {img}/{patch}")
        self.grid = (img[0] // patch[0], img[1] // patch[1])
        t = self.text_module
        tp = t.text_projection
        self.embed_dim = (tp.out_features if isinstance(tp, nn.Linear) else tp.shape[1]) if tp is not None \
            else t.ln_final.normalized_shape[0]
        if width != self.embed_dim:
            raise ValueError(f"visual token width {width} != text embedding width {self.embed_dim}: the filters "
                             "compare them by cosine")
        self.context_length = int(tc.context_length or t.positional_embedding.shape[0])
        self.register_buffer("mean", torch.tensor(tc.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(tc.std).view(1, 3, 1, 1), persistent=False)

    @property
    def text_module(self):
        return self.clip.text if hasattr(self.clip, "text") else self.clip

    def preprocess(self, pixels01):
        s = self.cfg.image_size
        x = pixels01
        if tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x.float(), size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def encode_patches(self, pixels01) -> torch.Tensor:
        """(B,3,H,W) in [0,1] -> (B, gh*gw, E) patch tokens."""
        x = self.preprocess(pixels01)
        v = self.clip.visual
        if self.timm:
            tr = v.trunk
            x = tr.forward_features(x)
            return x[:, getattr(tr, "num_prefix_tokens", 0):]
        x = v._embeds(x)
        x = v.ln_post(v.transformer(x))
        x = x[:, x.shape[1] - self.grid[0] * self.grid[1]:]
        return x @ v.proj if v.proj is not None else x

    def encode_text(self, ids) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B,L) -> words (B,L,E), sentence (B,E) (open_clip's pooled text embedding)."""
        from open_clip.transformer import text_global_pool

        t = self.text_module
        if t is self.clip:  # CLIP class: text tower attributes on the model
            L = ids.shape[1]
            x = t.token_embedding(ids) + t.positional_embedding[:L]
            mask = t.attn_mask[:L, :L] if t.attn_mask is not None else None
            x = t.ln_final(t.transformer(x, attn_mask=mask))
            pool, eos = t.text_pool_type, getattr(t, "text_eos_id", None)
        else:  # open_clip TextTransformer (SigLIP)
            if getattr(t, "cls_emb", None) is not None:
                raise NotImplementedError("text towers with an appended class token (CoCa) are not supported")
            x, mask = t._embeds(ids)
            x = t.ln_final(t.transformer(x, attn_mask=mask))
            pool, eos = t.pool_type, getattr(t, "eos_id", None)
        pooled = text_global_pool(x, ids, pool_type=pool, eos_token_id=eos)
        tp = t.text_projection
        if tp is None:
            return x, pooled
        if isinstance(tp, nn.Linear):
            return tp(x), tp(pooled)
        return x @ tp, pooled @ tp

    def scale_bias(self):
        scale = self.clip.logit_scale.exp()
        bias = getattr(self.clip, "logit_bias", None)
        return scale, (bias if bias is not None else torch.zeros((), device=scale.device))


# ================================================================================================ prompter
class FilterPrompter(nn.Module):
    """[local | global | V] -> sparse tokens (B, sparse_grid**2, C)."""

    def __init__(self, width: int, dim: int, sparse_grid: int):
        super().__init__()
        self.sparse_grid = int(sparse_grid)
        self.fuse = nn.Conv2d(3 * width, dim, 1)
        self.down = nn.Sequential(nn.Conv2d(dim, dim, 3, stride=2, padding=1), nn.GELU(),
                                  nn.Conv2d(dim, dim, 3, stride=2, padding=1), nn.GELU(),
                                  nn.Conv2d(dim, dim, 1))

    def forward(self, x: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
        """x (B,3E,gh,gw), pe (C,gh,gw)."""
        y = self.down(self.fuse(x) + pe.unsqueeze(0).to(x.dtype))
        if tuple(y.shape[-2:]) != (self.sparse_grid, self.sparse_grid):
            y = F.adaptive_avg_pool2d(y, self.sparse_grid)
        return y.flatten(2).transpose(1, 2)


def text_filters(V: torch.Tensor, words: torch.Tensor, word_pad: torch.Tensor, sentence: torch.Tensor,
                 scale: torch.Tensor, bias: torch.Tensor):
    """The word (local) and sentence (global) filters. Returns local, global (B,N,E) and sentence logits G (B,N)."""
    Vn = F.normalize(V.float(), dim=-1)
    Wn = F.normalize(words.float(), dim=-1)
    Sn = F.normalize(sentence.float(), dim=-1)
    scale, bias = scale.float(), bias.float()
    a = torch.sigmoid(scale * torch.einsum("bne,ble->bnl", Vn, Wn) + bias)  # (B,N,L)
    keep = (~word_pad).to(a.dtype).unsqueeze(1)  # (B,1,L)
    a_mean = (a * keep).sum(-1, keepdim=True) / keep.sum(-1, keepdim=True).clamp_min(1.0)  # (B,N,1)
    Vf = V.float()
    local = 0.5 * (Vf + a_mean * Vf)
    G = scale * torch.einsum("bne,be->bn", Vn, Sn) + bias
    glob = torch.sigmoid(G).unsqueeze(-1) * Vf
    return local.to(V.dtype), glob.to(V.dtype), G


# ================================================================================================ model
class RSRefSeg(nn.Module):
    features_reusable = True

    def __init__(self, cfg: RSRefSegConfig):
        super().__init__()
        self.cfg = cfg
        self.name = cfg.name
        sc, hc = cfg.sam, cfg.hiera
        sc.check()
        self.input_size = sc.image_size
        dim = sc.dim

        self.towers = Towers(cfg.towers)
        self.grid = self.towers.grid
        self._tokenizer = None

        trunk = Hiera(embed_dim=hc.embed_dim, num_heads=hc.num_heads, drop_path_rate=hc.drop_path_rate,
                      q_pool=hc.q_pool, stages=tuple(hc.stages),
                      window_pos_embed_bkg_spatial_size=tuple(hc.window_pos_embed_bkg_spatial_size),
                      window_spec=tuple(hc.window_spec), global_att_blocks=tuple(hc.global_att_blocks))
        neck = FpnNeck(position_encoding=PositionEmbeddingSine(num_pos_feats=dim, normalize=True, scale=None,
                                                               temperature=10000),
                       d_model=dim, backbone_channel_list=list(trunk.channel_list),
                       fpn_top_down_levels=list(sc.fpn_top_down_levels), fpn_interp_model=sc.fpn_interp_model)
        self.image_encoder = ImageEncoder(trunk=trunk, neck=neck, scalp=sc.scalp)
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.no_mem_embed, std=0.02)
        emb = sc.image_size // sc.backbone_stride
        self.prompt_encoder = PromptEncoder(embed_dim=dim, image_embedding_size=(emb, emb),
                                            input_image_size=(sc.image_size, sc.image_size),
                                            mask_in_chans=sc.mask_in_chans)
        self.mask_decoder = MaskDecoder(
            num_multimask_outputs=sc.num_multimask_outputs,
            transformer=TwoWayTransformer(depth=sc.decoder_depth, embedding_dim=dim, mlp_dim=sc.decoder_mlp_dim,
                                          num_heads=sc.decoder_heads),
            transformer_dim=dim, iou_head_depth=sc.iou_head_depth, iou_head_hidden_dim=sc.iou_head_hidden_dim,
            use_high_res_features=sc.use_high_res_features, iou_prediction_use_sigmoid=sc.iou_prediction_use_sigmoid,
            pred_obj_scores=sc.pred_obj_scores, pred_obj_scores_mlp=sc.pred_obj_scores_mlp)
        self.prompter = FilterPrompter(self.towers.embed_dim, dim, cfg.prompter.sparse_grid)
        self.register_buffer("sam_mean", torch.tensor(sc.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("sam_std", torch.tensor(sc.std).view(1, 3, 1, 1), persistent=False)

        lc = cfg.lora
        self.lora_modules: list[str] = []
        if lc.trunk:
            self.lora_modules += ["image_encoder.trunk." + n for n in apply_lora(
                self.image_encoder.trunk, lambda n, m: n.endswith((".attn.qkv", ".attn.proj")),
                lc.r, lc.alpha, lc.dropout)]
        if lc.towers:
            self.lora_modules += ["towers.clip." + n for n in apply_lora(
                self.towers.clip, _tower_attention, lc.r, lc.alpha, lc.dropout)]
        self.apply_freezing()

    # ------------------------------------------------------------------ training protocol
    def inert_parameter_names(self) -> list[str]:
        """Parameters of the trained parts that this forward never reaches (kept for checkpoint compatibility)."""
        out = []
        for n, _ in self.named_parameters():
            if n.startswith("prompt_encoder.") and not n.startswith("prompt_encoder.mask_downscaling."):
                out.append(n)  # point / box / no-mask embeddings: the dense prompt is always given
            elif n.startswith(("mask_decoder.iou_prediction_head.", "mask_decoder.pred_obj_score_head.")):
                out.append(n)
            elif n.startswith("mask_decoder.output_hypernetworks_mlps.") and n.split(".")[2] != "0":
                out.append(n)
        return out

    def apply_freezing(self):
        """Trained: LoRA tensors, the prompter, the prompt encoder's mask path, the mask decoder. The rest (towers,
        Hiera, FPN neck, no_mem_embed, contrastive scale/bias) is frozen."""
        inert = set(self.inert_parameter_names())
        for n, p in self.named_parameters():
            train = is_lora_name(n) or n.startswith(("prompter.", "prompt_encoder.", "mask_decoder."))
            p.requires_grad_(train and n not in inert)

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def param_groups(self, base_lr: float) -> list[dict]:
        """The authors train everything at one rate (AdamW 1e-4): two groups at base_lr, named for the logs."""
        lora, rest = [], []
        for n, p in self.trainable_parameters():
            (lora if is_lora_name(n) else rest).append(p)
        return [{"params": lora, "lr": base_lr, "name": "lora"},
                {"params": rest, "lr": base_lr, "name": "prompt_path"}]

    # ------------------------------------------------------------------ tokenizer
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            tc = self.cfg.towers
            ctx = self.towers.context_length
            if tc.tokenizer == "clip-bpe":
                from .union_encoder import ClipTokenizer

                self._tokenizer = ClipTokenizer(tc.clip_model, ctx)
            elif tc.tokenizer == "siglip-spm":
                from .union_encoder import resolve_asset

                d = resolve_asset(tc.tokenizer_dir) if tc.tokenizer_dir else None
                self._tokenizer = SiglipSpmTokenizer.from_dir(d, ctx)
            else:
                raise ValueError(f"unknown towers.tokenizer {tc.tokenizer!r} (siglip-spm | clip-bpe)")
        return self._tokenizer

    def set_tokenizer(self, tok):
        self._tokenizer = tok

    def tokenize(self, texts: Sequence[str]):
        ids, pad = self.tokenizer(list(texts))
        dev = self.no_mem_embed.device
        return ids.to(dev), pad.to(dev)

    # ------------------------------------------------------------------ split forward
    def _fit(self, pixels):
        S = self.input_size
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"pixels must be (B,3,H,W), got {tuple(pixels.shape)}")
        if tuple(pixels.shape[-2:]) != (S, S):
            pixels = F.interpolate(pixels.float(), size=(S, S), mode="bilinear", align_corners=False, antialias=True)
        return pixels

    def encode_images(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B,3,S,S) in [0,1] -> text-independent features: visual (B,N,E) patch tokens, image_embed (B,C,h,w),
        high_res_0 / high_res_1 (the decoder's projected FPN levels)."""
        pixels = self._fit(pixels)
        visual = self.towers.encode_patches(pixels)
        sam_in = (pixels - self.sam_mean.to(pixels.dtype)) / self.sam_std.to(pixels.dtype)
        fpn = self.image_encoder(sam_in)["backbone_fpn"]
        out = {"visual": visual, "image_embed": fpn[-1] + self.no_mem_embed.view(1, -1, 1, 1)}
        if self.cfg.sam.use_high_res_features:
            out["high_res_0"] = self.mask_decoder.conv_s0(fpn[0])
            out["high_res_1"] = self.mask_decoder.conv_s1(fpn[1])
        return out

    decode_text_cache = True  # decode_features accepts text_cache= (Predictor.decode passes one per call)

    def encode_texts(self, texts: Sequence[str], text_cache: dict | None = None):
        """texts -> words (B,L,E), padding (B,L), sentence (B,E). With `text_cache` (a dict the caller keeps while the
        weights do not change), each distinct text is encoded once, alone, and reused."""
        if text_cache is None:
            ids, pad = self.tokenize(texts)
            words, sentence = self.towers.encode_text(ids)
            return words, pad, sentence
        for t in dict.fromkeys(texts):
            if t not in text_cache:
                ids, pad = self.tokenize([t])
                w, snt = self.towers.encode_text(ids)
                text_cache[t] = (w[0], pad[0], snt[0])
        items = [text_cache[t] for t in texts]
        L = max(it[0].shape[0] for it in items)
        words = items[0][0].new_zeros((len(items), L, items[0][0].shape[-1]))
        pad = torch.ones((len(items), L), dtype=torch.bool, device=words.device)
        for i, (w, p, _) in enumerate(items):
            words[i, : w.shape[0]] = w
            pad[i, : p.shape[0]] = p
        return words, pad, torch.stack([it[2] for it in items])

    def decode_features(self, features: dict[str, torch.Tensor], texts: Sequence[str] | None = None, *,
                        input_ids=None, text_pad=None, text_cache: dict | None = None) -> dict[str, torch.Tensor]:
        """features of B images (from encode_images) + B texts -> dict(logits (B,1,S,S), low_res_logits,
        sentence_logits (B,1,gh,gw), iou_pred, object_score_logits)."""
        V = features["visual"]
        B = V.shape[0]
        if input_ids is None:
            if texts is None or len(texts) != B:
                raise ValueError(f"need one text per image: {B} images, {None if texts is None else len(texts)} texts")
            words, text_pad, sentence = self.encode_texts(list(texts), text_cache)
        else:
            words, sentence = self.towers.encode_text(input_ids.to(V.device))
        text_pad = text_pad.to(V.device)
        scale, bias = self.towers.scale_bias()
        local, glob, G = text_filters(V, words, text_pad, sentence, scale, bias)
        gh, gw = self.grid
        x = torch.cat([local, glob, V], -1).transpose(1, 2).reshape(B, -1, gh, gw)
        pe = self.prompt_encoder.pe_layer((gh, gw))
        sparse = self.prompter(x, pe)
        G = G.view(B, 1, gh, gw)
        mask_in = F.interpolate(G.float(), size=self.prompt_encoder.mask_input_size, mode="bilinear",
                                align_corners=False)
        dense = self.prompt_encoder.mask_downscaling(mask_in.to(V.dtype))
        hr = [features["high_res_0"], features["high_res_1"]] if self.cfg.sam.use_high_res_features else None
        low_res, iou_pred, _, obj = self.mask_decoder(
            image_embeddings=features["image_embed"], image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False,
            repeat_image=False, high_res_features=hr)
        S = self.input_size
        logits = F.interpolate(low_res.float(), size=(S, S), mode="bilinear", align_corners=False)
        return {"logits": logits, "low_res_logits": low_res, "sentence_logits": G, "iou_pred": iou_pred,
                "object_score_logits": obj}

    def forward(self, pixels: torch.Tensor, texts: Sequence[str] | None = None, **kw) -> dict[str, torch.Tensor]:
        return self.decode_features(self.encode_images(pixels), texts, **kw)

    def predict_masks(self, pixels: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        return self.decode_features(self.encode_images(pixels), list(texts))["logits"]

    # ------------------------------------------------------------------ loss / decision
    def loss(self, output: dict[str, torch.Tensor], target: torch.Tensor):
        logits = output["logits"].float()
        if target.ndim == 3:
            target = target[:, None]
        target = target.to(logits.dtype)
        if tuple(target.shape[-2:]) != tuple(logits.shape[-2:]):
            target = F.interpolate(target, size=logits.shape[-2:], mode="nearest")
        lc = self.cfg.loss
        bce = F.binary_cross_entropy_with_logits(logits, target)
        total = lc.bce_weight * bce
        parts = {"bce": float(bce.detach())}
        if lc.dice_weight:
            p = torch.sigmoid(logits).flatten(1)
            t = target.flatten(1)
            dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
            total = total + lc.dice_weight * dice.mean()
            parts["dice"] = float(dice.mean().detach())
        parts["total"] = float(total.detach())
        return total, parts

    # its loss is BCE (+ Dice) on sigmoid(logits): the probability it learned is sigmoid(x) (decision.py)
    prob_rule = "sigmoid"

    def logits_to_prob(self, logits: torch.Tensor, rule: str | None = None) -> torch.Tensor:
        return prob_from_logits(logits, rule or self.prob_rule)

    # ------------------------------------------------------------------ checkpoint hooks
    def checkpoint_extras(self) -> dict[str, torch.Tensor]:
        """What our own checkpoint format carries besides config + state dict: the SigLIP sentencepiece model."""
        if self.cfg.towers.tokenizer != "siglip-spm":
            return {}
        tok = self._tokenizer
        proto = getattr(tok, "proto", None)
        if proto is None:
            try:
                proto = self.tokenizer.proto
            except FileNotFoundError:
                return {}
        return {"tokenizer_spm": torch.frombuffer(bytearray(proto), dtype=torch.uint8)}

    def restore_extras(self, obj: dict):
        if "tokenizer_spm" in obj:
            self.set_tokenizer(SiglipSpmTokenizer(proto=bytes(obj["tokenizer_spm"].numpy().tobytes()),
                                                  context_length=self.towers.context_length))


def _tower_attention(name: str, mod: nn.Module) -> bool:
    """LoRA targets in the towers: every self-attention (open_clip MultiheadAttention; timm qkv/proj Linears),
    not the image tower's attention-pooling head (SigLIP's MAP head is never used here)."""
    if ".attn_pool" in name or name.startswith("visual.attn_pool") or ".head." in name or name.endswith(".head"):
        return False
    if isinstance(mod, nn.MultiheadAttention):
        return True
    return name.endswith((".attn.qkv", ".attn.proj"))


# ================================================================================================ weights
def towers_key_map(model) -> dict[str, str]:
    pre = "towers.clip."
    return {k[len(pre):]: k for k in model.state_dict() if k.startswith(pre) and not is_lora_name(k)}


def load_towers_weights(model: RSRefSeg, path):
    """open_clip weights (file, or a local dir with open_clip_model.safetensors | open_clip_pytorch_model.bin) -> the
    towers, strictly. A dir's sentencepiece file (spiece.model) becomes the tokenizer."""
    d = open_clip_folder(path)
    p = resolve_open_clip_file(path)
    sd = read_state_dict(p)
    report = strict_fill(model, sd, towers_key_map(model), kind="open_clip", path=str(p))
    if model.cfg.towers.tokenizer == "siglip-spm" and any((d / n).is_file() for n in SPM_NAMES):
        model.cfg.towers.tokenizer_dir = str(d.resolve())
        model.towers.cfg.tokenizer_dir = str(d.resolve())
        model.set_tokenizer(None)
    return report


register_family(ModelFamily(
    name="rsrefseg", config_class=RSRefSegConfig, model_class=RSRefSeg,
    presets={"rsrefseg": rsrefseg_preset, "rsrefseg-tiny": rsrefseg_tiny_preset},
    weight_loaders={"sam2": load_sam2_weights, "open_clip": load_towers_weights},
))
