"""The VLM: vision backbone(s) -> projector -> LLM, with the Prismatic sequence layout
`[BOS] [projected patches] [prompt tokens]` (patches and BOS carry label -100)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

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
                 pad_token_id: int):
        super().__init__()
        check_same_grid(list(backbones))
        self.encoder = nn.ModuleList(backbones)
        self.projector = projector
        self.llm = llm
        self.pad_token_id = pad_token_id

    @property
    def num_patches(self) -> int:
        return self.encoder[0].num_patches

    def parts(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "projector": self.projector, "llm": self.llm}

    def encode_images(self, pixel_values: Sequence[torch.Tensor]) -> torch.Tensor:
        """One pixel tensor [B, 3, S, S] per backbone -> projected patches [B, N, D_llm]."""
        frozen = not any(p.requires_grad for p in self.encoder.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            features = torch.cat([bb(px) for bb, px in zip(self.encoder, pixel_values)], dim=-1)
        return self.projector(features)

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
                labels: Sequence[torch.Tensor] | None = None, num_items_in_batch: int | None = None):
        """Training forward: returns the LLM output (loss when labels are given). The loss is the
        mean over target tokens, or, with `num_items_in_batch` (gradient accumulation), their sum
        divided by that count, so micro-batch losses add up to the mean of the whole batch."""
        image_embeds = self.encode_images(pixel_values) if pixel_values is not None else None
        embeds, mask, pos, lab = self.build_inputs(image_embeds, input_ids, labels, "right")
        extra = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
        return self.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, labels=lab, use_cache=False,
                        **extra)
