"""RS2SAM2: union encoder + text-fused SAM2 (Hiera trunk with adapters, FPN neck, prompt encoder, mask decoder).

Implements the segmentation-model protocol of docs/ARCHITECTURE.md:
  input_size, name, predict_masks(pixels01, texts) -> logits, forward(pixels01, texts) -> dict, loss(out, target),
  trainable_parameters(), param_groups(base_lr), logits_to_prob(logits).
The end of the module registers the RS2-SAM2 family (model_core/families.py): its config, presets, the foreign
checkpoint kinds it reads and the authors' release.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from sam2.modeling.backbones.image_encoder import FpnNeck
from sam2.modeling.position_encoding import PositionEmbeddingSine
from sam2.modeling.sam.prompt_encoder import PromptEncoder
from sam2.modeling.sam.transformer import TwoWayTransformer

from .config import RS2SAM2_PRESETS, ModelConfig
from .decision import prob_from_logits
from .families import ModelFamily, Release, register_family
from .fusion import FusionHiera, FusionImageEncoder
from .losses import RS2SAM2Loss
from .presence import PresenceHead, mask_statistics
from .prompt_generator import MaskPromptGenerator, SparsePromptMLP, TextMaskDecoder
from .release import RELEASE_LAYOUT, is_release_dir, load_official_weights, load_release
from .rs2sam2_weights import has_official_keys, load_beit3_weights, load_open_clip_weights
from .sam2_weights import load_sam2_weights
from .union_encoder import UnionEncoder

# Name fragments of the authors' fast learning-rate group, in our module names:
# Hiera adapters (MLP_Adapter, Space_Adapter), decoder text attention (vlfusion_module), pseudo-mask head
# (vmtoken, mask_linear, mask_product).
FAST_GROUP_KEYS = (".cross_adapter.", ".mlp_adapter.", "mask_decoder.text_attn.", "mask_prompt.")


class RS2SAM2(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.name = cfg.name
        sc, hc = cfg.sam, cfg.hiera
        sc.check()
        self.input_size = sc.image_size
        dim = sc.dim

        # --- union encoder and the heads on its tokens
        self.union_encoder = UnionEncoder(cfg.union)
        width = cfg.union.width
        self.mask_prompt = MaskPromptGenerator(width, cfg.heads.mask_prompt_heads)
        self.sparse_prompt = SparsePromptMLP(width, dim)
        self.text_proj = nn.Linear(width, dim)
        self.boundary_head = nn.Linear(dim, 1)
        self.presence_head = PresenceHead(width) if cfg.heads.presence else None
        self.presence_threshold = float(cfg.heads.presence_threshold)

        # --- SAM2 image encoder: Hiera trunk with fusion adapters + FPN neck (sam2's modules)
        trunk = FusionHiera(
            text_dim=dim, fusion=cfg.fusion, embed_dim=hc.embed_dim, num_heads=hc.num_heads,
            drop_path_rate=hc.drop_path_rate, q_pool=hc.q_pool, stages=tuple(hc.stages),
            window_pos_embed_bkg_spatial_size=tuple(hc.window_pos_embed_bkg_spatial_size),
            window_spec=tuple(hc.window_spec), global_att_blocks=tuple(hc.global_att_blocks),
        )
        neck = FpnNeck(
            position_encoding=PositionEmbeddingSine(num_pos_feats=dim, normalize=True, scale=None,
                                                    temperature=10000),
            d_model=dim, backbone_channel_list=list(trunk.channel_list),
            fpn_top_down_levels=list(sc.fpn_top_down_levels), fpn_interp_model=sc.fpn_interp_model,
        )
        self.image_encoder = FusionImageEncoder(trunk=trunk, neck=neck, scalp=sc.scalp)
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.no_mem_embed, std=0.02)

        # --- SAM2 prompt encoder and mask decoder
        emb = sc.image_size // sc.backbone_stride
        self.embedding_size = (emb, emb)
        self.prompt_encoder = PromptEncoder(embed_dim=dim, image_embedding_size=(emb, emb),
                                            input_image_size=(sc.image_size, sc.image_size),
                                            mask_in_chans=sc.mask_in_chans)
        self.mask_decoder = TextMaskDecoder(
            text_attn_heads=sc.text_attn_heads, num_multimask_outputs=sc.num_multimask_outputs,
            transformer=TwoWayTransformer(depth=sc.decoder_depth, embedding_dim=dim, mlp_dim=sc.decoder_mlp_dim,
                                          num_heads=sc.decoder_heads),
            transformer_dim=dim, iou_head_depth=sc.iou_head_depth, iou_head_hidden_dim=sc.iou_head_hidden_dim,
            use_high_res_features=sc.use_high_res_features, iou_prediction_use_sigmoid=sc.iou_prediction_use_sigmoid,
            pred_obj_scores=sc.pred_obj_scores, pred_obj_scores_mlp=sc.pred_obj_scores_mlp,
        )
        self.register_buffer("sam_mean", torch.tensor(sc.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("sam_std", torch.tensor(sc.std).view(1, 3, 1, 1), persistent=False)

        self.criterion = RS2SAM2Loss(cfg.loss)
        self.apply_freezing()


    # ------------------------------------------------------------------ freezing
    def inert_parameter_names(self) -> list[str]:
        """Parameters kept for checkpoint compatibility that this forward never uses (no gradient can reach them)."""
        names = []
        for n, _ in self.named_parameters():
            if n.startswith("prompt_encoder.") and not n.startswith("prompt_encoder.mask_downscaling."):
                names.append(n)  # point / box / no-mask embeddings: prompts are a pseudo-mask + one text token
            elif n.startswith(("mask_decoder.iou_prediction_head.", "mask_decoder.pred_obj_score_head.")):
                names.append(n)  # IoU and object-score heads: computed, ignored (single mask, no "no object")
            elif n.startswith("mask_decoder.output_hypernetworks_mlps.") and n.split(".")[2] != "0":
                names.append(n)  # multimask hypernetworks: only mask token 0 is output
        return names

    def apply_freezing(self):
        for p in self.parameters():
            p.requires_grad_(True)
        if self.cfg.train.freeze_trunk:
            for _, p in self.image_encoder.trunk.stock_parameters():
                p.requires_grad_(False)
            self.image_encoder.neck.requires_grad_(False)
        inert = set(self.inert_parameter_names())
        for n, p in self.named_parameters():
            if n in inert:
                p.requires_grad_(False)
        # backend-specific never-used parameters (BEiT-3 vision mask token, CLIP contrastive heads)
        ue = self.union_encoder.backend
        if hasattr(ue, "beit3"):
            ue.beit3.vision_embed.mask_token.requires_grad_(False)
        if hasattr(ue, "clip"):
            c = ue.clip
            for p in (c.logit_scale, getattr(c, "logit_bias", None), c.visual.proj, c.text_projection):
                if isinstance(p, nn.Parameter):
                    p.requires_grad_(False)
                elif isinstance(p, nn.Module):
                    p.requires_grad_(False)

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def param_groups(self, base_lr: float) -> list[dict]:
        fast, rest = [], []
        for n, p in self.trainable_parameters():
            (fast if any(k in n for k in FAST_GROUP_KEYS) else rest).append(p)
        mult = self.cfg.train.fast_lr_mult
        return [{"params": fast, "lr": base_lr * mult, "name": "adapters_fusion_pseudo_mask"},
                {"params": rest, "lr": base_lr, "name": "rest"}]

    # ------------------------------------------------------------------ forward
    def tokenize(self, texts: Sequence[str]):
        return self.union_encoder.tokenize(list(texts), device=self.no_mem_embed.device)

    def forward(self, pixels: torch.Tensor, texts: Sequence[str] | None = None, *,
                input_ids: torch.Tensor | None = None, text_pad: torch.Tensor | None = None,
                union_pixels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """pixels (B,3,S,S) RGB in [0,1], S = input_size; texts: B captions (or input_ids/text_pad given directly).
        union_pixels: optional (B,3,s,s) in [0,1] at the union encoder's size (default: pixels resized, bilinear
        with antialias; the authors resize the original image to both sizes, which this lets a caller reproduce).

        Returns logits (B,1,S,S), boundary_weight (B,), low_res_logits (B,1,S/4,S/4), pseudo_mask (B,1,gh,gw)
        probabilities, pseudo_mask_logits, iou_pred, object_score_logits."""
        S = self.input_size
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"pixels must be (B,3,H,W), got {tuple(pixels.shape)}")
        if tuple(pixels.shape[-2:]) != (S, S):
            pixels = F.interpolate(pixels.float(), size=(S, S), mode="bilinear", align_corners=False, antialias=True)
        B = pixels.shape[0]
        if input_ids is None:
            if texts is None or len(texts) != B:
                raise ValueError(f"need one text per image: {B} images, "
                                 f"{None if texts is None else len(texts)} texts")
            input_ids, text_pad = self.tokenize(texts)
        elif text_pad is None:
            raise ValueError("text_pad is required with input_ids")
        input_ids, text_pad = input_ids.to(pixels.device), text_pad.to(pixels.device)

        # union encoder -> c, V, T
        u = self.union_encoder(self.union_encoder.preprocess(pixels if union_pixels is None else union_pixels),
                               input_ids, text_pad)
        pseudo_prob, pseudo_logit = self.mask_prompt(u.cls, u.visual, u.grid)
        sparse = self.sparse_prompt(u.cls)  # (B,1,dim)
        t = self.text_proj(u.text)  # (B,L,dim)
        fusion_pad = text_pad if self.cfg.fusion.mask_text_padding else None

        # text-fused SAM2 image encoder
        sam_in = (pixels - self.sam_mean.to(pixels.dtype)) / self.sam_std.to(pixels.dtype)
        enc = self.image_encoder(sam_in, t, fusion_pad)
        fpn = enc["backbone_fpn"]
        image_embed = fpn[-1] + self.no_mem_embed.view(1, -1, 1, 1)
        high_res = None
        if self.cfg.sam.use_high_res_features:
            high_res = [self.mask_decoder.conv_s0(fpn[0]), self.mask_decoder.conv_s1(fpn[1])]

        # prompts: pseudo-mask (dense, as a probability) + one sparse token from the class token
        mask_in = MaskPromptGenerator.to_mask_input(pseudo_prob, self.prompt_encoder.mask_input_size)
        dense = self.prompt_encoder.mask_downscaling(mask_in)
        low_res, iou_pred, _, obj = self.mask_decoder(
            image_embeddings=image_embed, image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False,
            repeat_image=False, high_res_features=high_res, text=t, text_pad=fusion_pad,
        )
        logits = F.interpolate(low_res.float(), size=(S, S), mode="bilinear", align_corners=False)
        boundary_weight = self.boundary_head(t[:, 0]).squeeze(-1)  # (B,) from the first (<s>/sot) text token
        out = {"logits": logits, "boundary_weight": boundary_weight, "low_res_logits": low_res,
               "pseudo_mask": pseudo_prob, "pseudo_mask_logits": pseudo_logit, "iou_pred": iou_pred,
               "object_score_logits": obj, "class_token": u.cls[:, 0]}
        if self.presence_head is not None:
            out["presence_logits"] = self.presence_head(u.cls[:, 0], mask_statistics(pseudo_prob, low_res))
        return out

    def predict_masks(self, pixels: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """(N,3,S,S) in [0,1] + N texts -> (N,1,S,S) mask logits (use logits_to_prob for probabilities)."""
        return self.forward(pixels, list(texts))["logits"]

    def predict_masks_and_presence(self, pixels: torch.Tensor, texts: Sequence[str]):
        """(logits (N,1,S,S), presence (N,) in [0, 1]): the presence head's probability when the model has one
        (trained from negatives: see PresenceHead), else the pseudo-mask's peak, the union encoder's own judgement
        of where the referent is (for the authors' weights, which have no head: it separates tiles with and without
        the referent far better than SAM2's object score, but misses objects smaller than one of its patches)."""
        out = self.forward(pixels, list(texts))
        if "presence_logits" in out:
            return out["logits"], torch.sigmoid(out["presence_logits"])
        return out["logits"], out["pseudo_mask"].flatten(1).amax(1)

    # ------------------------------------------------------------------ loss / decision
    def loss(self, output: dict[str, torch.Tensor], target: torch.Tensor):
        return self.criterion(output, target)

    # RS2SAM2Loss trains softmax([1 - x, x]): the probability the model learned is sigmoid(2x - 1) (decision.py)
    prob_rule = "two_class"

    def logits_to_prob(self, logits: torch.Tensor, rule: str | None = None) -> torch.Tensor:
        """The trained probability sigmoid(2x - 1): > 0.5 exactly where logit > 0.5 (``rule`` measures another)."""
        return prob_from_logits(logits, rule or self.prob_rule)

    # ------------------------------------------------------------------ checkpoint hooks (checkpoints.py)
    def checkpoint_extras(self) -> dict[str, torch.Tensor]:
        """What our checkpoint format carries besides config + state dict: a beit3 backend's sentencepiece model."""
        proto = self.union_encoder.spm_proto()
        return {} if proto is None else {"tokenizer_spm": torch.frombuffer(bytearray(proto), dtype=torch.uint8)}

    def restore_extras(self, obj: dict) -> None:
        if "tokenizer_spm" in obj:
            self.union_encoder.set_spm_proto(bytes(obj["tokenizer_spm"].numpy().tobytes()))


register_family(ModelFamily(
    name="rs2sam2", config_class=ModelConfig, model_class=RS2SAM2, presets=RS2SAM2_PRESETS,
    weight_loaders={"sam2": load_sam2_weights, "open_clip": load_open_clip_weights, "beit3": load_beit3_weights,
                    "official": load_official_weights},
    release=Release(kind="official", description=RELEASE_LAYOUT, matches_dir=is_release_dir,
                    matches_keys=has_official_keys, load=load_release),
    default=True,  # its configs predate the "family" key
))
