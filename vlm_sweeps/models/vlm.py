"""The VLM: vision backbone(s) -> projector -> LLM, with the Prismatic sequence layout
`[BOS] [projected patches] [prompt tokens]` (patches and BOS carry label -100)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutput

from vlm_sweeps.models.projector import Projector
from vlm_sweeps.models.vision import VisionBackbone, check_same_grid

IGNORE_INDEX = -100


class VisionLanguageModel(nn.Module):
    """`VisionLanguageModel(backbones, projector, llm, *, pad_token_id)`.

    Fused encoders run each backbone on its own transform of the image and concatenate the patch
    features along channels. Parts named `encoder`, `projector`, `llm` are what the optimization
    stages train or freeze (see train/stages.py).
    """

    def __init__(self, backbones: Sequence[VisionBackbone], projector: Projector, llm: nn.Module, *,
                 pad_token_id: int, feature_dtype: torch.dtype | None = torch.float16):
        super().__init__()
        check_same_grid(list(backbones))
        self.encoder = nn.ModuleList(backbones)
        self.projector = projector
        self.llm = llm
        self.pad_token_id = pad_token_id
        self.feature_dtype = feature_dtype

    @property
    def num_visual_tokens(self) -> int:
        """Image positions in the LLM's sequence: the connector's output tokens (the patches, for
        the Prismatic MLPs; fewer for the compressing connectors)."""
        n = getattr(self.projector, "num_tokens", None)
        return n if n is not None else self.encoder[0].num_patches

    @property
    def num_patches(self) -> int:
        """Image positions in the LLM's sequence (the name predates compressing connectors)."""
        return self.num_visual_tokens

    def parts(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "projector": self.projector, "llm": self.llm}

    def backbone_features(self, pixel_values: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """One pixel tensor [B, 3, S, S] per backbone -> its patch features [B, N, C_b].

        A frozen encoder's features are rounded to `feature_dtype` (half precision), the precision
        the frozen-feature cache stores (features.py), so results do not depend on the cache."""
        # frozen: nothing trains it here (frozen parameters, or no gradients at all, as in evaluation)
        frozen = not (torch.is_grad_enabled() and any(p.requires_grad for p in self.encoder.parameters()))
        with torch.set_grad_enabled(not frozen):
            features = [bb(px) for bb, px in zip(self.encoder, pixel_values)]
        if frozen and self.feature_dtype is not None:
            features = [f.to(self.feature_dtype) for f in features]
        return features

    def project(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-backbone patch features -> projected patches [B, N, D_llm] (fused: channels concatenated)."""
        dtype = next(self.projector.parameters()).dtype
        return self.projector(torch.cat([f.to(dtype) for f in features], dim=-1))

    def encode_images(self, pixel_values: Sequence[torch.Tensor]) -> torch.Tensor:
        """One pixel tensor [B, 3, S, S] per backbone -> projected patches [B, N, D_llm]."""
        return self.project(self.backbone_features(pixel_values))

    def build_inputs(self, image_embeds: torch.Tensor | None, input_ids: Sequence[torch.Tensor],
                     labels: Sequence[torch.Tensor] | None = None, padding_side: str = "right"):
        """Assemble per-sample `[BOS] [patches] [tokens]` embeddings and pad the batch.

        input_ids[i] starts with BOS. Returns (inputs_embeds [B, T, D], attention_mask [B, T],
        position_ids [B, T], labels [B, T] or None).
        """
        embed = self.llm.get_input_embeddings()
        rows, masks, label_rows = [], [], []
        for i, ids in enumerate(input_ids):
            tok = embed(ids)  # [t, D]
            if image_embeds is not None:
                img = image_embeds[i].to(tok.dtype)
                tok = torch.cat([tok[:1], img, tok[1:]], dim=0)
            rows.append(tok)
            if labels is not None:
                lab = labels[i]
                if image_embeds is not None:
                    lab = torch.cat([lab[:1], lab.new_full((img.shape[0],), IGNORE_INDEX), lab[1:]])
                label_rows.append(lab)
        length = max(r.shape[0] for r in rows)
        batch, dim = len(rows), rows[0].shape[-1]
        embeds = rows[0].new_zeros(batch, length, dim)
        mask = torch.zeros(batch, length, dtype=torch.long, device=embeds.device)
        out_labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long, device=embeds.device) \
            if labels is not None else None
        for i, r in enumerate(rows):
            n = r.shape[0]
            sl = slice(length - n, length) if padding_side == "left" else slice(0, n)
            embeds[i, sl] = r
            mask[i, sl] = 1
            if out_labels is not None:
                out_labels[i, sl] = label_rows[i]
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        return embeds, mask, position_ids, out_labels

    def forward(self, pixel_values: Sequence[torch.Tensor] | None, input_ids: Sequence[torch.Tensor],
                labels: Sequence[torch.Tensor] | None = None, num_items_in_batch: int | None = None,
                image_features: Sequence[torch.Tensor] | None = None):
        """Training forward: returns the LLM output (loss when labels are given). The loss is the
        mean over target tokens, or, with `num_items_in_batch` (gradient accumulation), their sum
        divided by that count, so micro-batch losses add up to the mean of the whole batch.
        `image_features` (per-backbone features, e.g. from the frozen-feature cache) replace
        `pixel_values` and skip the encoder."""
        if image_features is not None:
            image_embeds = self.project(image_features)
        else:
            image_embeds = self.encode_images(pixel_values) if pixel_values is not None else None
        embeds, mask, pos, lab = self.build_inputs(image_embeds, input_ids, labels, "right")
        if lab is None:
            return self.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=False)
        hidden = self.llm.get_decoder()(inputs_embeds=embeds, attention_mask=mask, position_ids=pos,
                                        use_cache=False).last_hidden_state
        return CausalLMOutput(loss=causal_lm_loss(self.llm.get_output_embeddings(), hidden, lab, num_items_in_batch))


def causal_lm_loss(lm_head: nn.Module, hidden: torch.Tensor, labels: torch.Tensor,
                   num_items_in_batch: int | None = None) -> torch.Tensor:
    """transformers' causal-LM loss (next-token cross entropy in fp32, -100 ignored; the mean over
    targets, or their sum / `num_items_in_batch`), with the LM head applied at target positions
    only: image patches, prompts and padding (most of a VLM's sequence) get no logits at all."""
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    logits = lm_head(hidden[:, :-1][keep]).float()
    reduction = "mean" if num_items_in_batch is None else "sum"
    loss = nn.functional.cross_entropy(logits, targets[keep], reduction=reduction)
    return loss if num_items_in_batch is None else loss / num_items_in_batch
