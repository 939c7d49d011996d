"""LLM backbones through transformers' real classes (Llama, Mistral, Phi).

Architecture facts of each LLM the paper uses live in ARCHS (one line each). At `scale=tiny` the
same class is built with those proportions divided by `scale.llm_shrink` and random weights; at
`scale=full` the public weights load. Either way a pad token exists and the embedding matrix is
resized to a multiple of 64 (the anchor's choice, tensor-core friendly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from torch import nn


@dataclass(frozen=True)
class LLMArch:
    family: str  # llama | mistral | phi
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    tokenizer_size: int = 32000  # len() of the public tokenizer, before our pad token (dry-run estimates)


ARCHS: dict[str, LLMArch] = {
    "llama2-7b": LLMArch("llama", 4096, 32, 32, 32, 11008),
    "llama2-13b": LLMArch("llama", 5120, 40, 40, 40, 13824),
    "mistral-7b": LLMArch("mistral", 4096, 32, 32, 8, 14336),
    "phi-2": LLMArch("phi", 2560, 32, 32, 32, 10240, tokenizer_size=50295),
}
PAD_MULTIPLE = 64


def tiny_config(arch: LLMArch, shrink, vocab_size: int, max_seq_len: int):
    """A transformers config of `arch`'s family with its proportions shrunk."""
    from transformers import LlamaConfig, MistralConfig, PhiConfig

    heads = max(1, arch.heads // shrink.heads)
    head_dim = max(2, (arch.hidden // arch.heads) * shrink.heads // shrink.width)
    common = dict(vocab_size=vocab_size, hidden_size=heads * head_dim,
                  intermediate_size=max(1, arch.intermediate // shrink.width),
                  num_hidden_layers=max(1, round(arch.layers / shrink.depth + 1e-9)),
                  num_attention_heads=heads, max_position_embeddings=max_seq_len, tie_word_embeddings=False,
                  # the real init (std 0.02 ~ 1/sqrt(4096)) keeps std * sqrt(width) when the width shrinks
                  initializer_range=0.02 * math.sqrt(shrink.width))
    if arch.family == "llama":
        config = LlamaConfig(num_key_value_heads=max(1, arch.kv_heads // shrink.heads), rms_norm_eps=1e-5, **common)
    elif arch.family == "mistral":
        config = MistralConfig(num_key_value_heads=max(1, arch.kv_heads // shrink.heads), sliding_window=4096,
                               rms_norm_eps=1e-5, **common)
    elif arch.family == "phi":
        config = PhiConfig(partial_rotary_factor=0.4, hidden_act="gelu_new", layer_norm_eps=1e-5,
                           resid_pdrop=0.1, **common)
    else:
        raise ValueError(f"unknown LLM family {arch.family!r}")
    config._attn_implementation = "sdpa"
    return config


def build_llm(arch_name: str, model_id: str, tokenizer, shrink, max_seq_len: int, pretrained: bool,
              dtype=None, *, models_dir: Path | None = None) -> nn.Module:
    """A causal LM whose vocabulary covers `tokenizer` (pad token included), padded to 64.
    `pretrained`: the checkpoint of `model_id` found locally (models/weights.py), loaded in `dtype`
    (default float32: the master weights of bf16 mixed precision)."""
    from transformers import AutoModelForCausalLM

    if arch_name not in ARCHS:
        raise ValueError(f"unknown LLM architecture {arch_name!r}; known: {', '.join(ARCHS)}")
    if pretrained:
        model = _load_pretrained(arch_name, model_id, models_dir, dtype)
    else:
        config = tiny_config(ARCHS[arch_name], shrink, _padded(len(tokenizer)), max_seq_len)
        model = AutoModelForCausalLM.from_config(config)
    if model.get_input_embeddings().num_embeddings < len(tokenizer) or pretrained:
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=PAD_MULTIPLE)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def _load_pretrained(arch_name: str, model_id: str, models_dir: Path | None, dtype) -> nn.Module:
    import torch
    from transformers import AutoModelForCausalLM

    from vlm_sweeps.models.weights import WeightSpec, resolve

    folder = resolve(WeightSpec(model_id, "transformers", f"llm arch {arch_name}", needs_tokenizer=True), models_dir)
    model, info = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", local_files_only=True,
                                                       dtype=dtype or torch.float32, output_loading_info=True)
    family = ARCHS[arch_name].family
    if model.config.model_type != family:
        raise ValueError(f"{folder}: a {model.config.model_type!r} checkpoint, but llm arch {arch_name!r} is a "
                         f"{family!r} model; fix llm.id or llm.arch")
    # never train on silently re-initialised weights
    if info["missing_keys"] or info["mismatched_keys"]:
        raise ValueError(f"{folder}: checkpoint does not fit {type(model).__name__}: missing "
                         f"{sorted(info['missing_keys'])[:5]}, mismatched {sorted(info['mismatched_keys'])[:5]}")
    return model


def enable_grad_checkpointing(model: nn.Module) -> None:
    """Recompute each decoder layer's activations in the backward pass (the anchor's memory saver).
    Non-reentrant, so gradients also reach the projector through a frozen LLM (see
    `checkpoint_while_frozen`)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x names it so
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False


def checkpoint_while_frozen(model: nn.Module) -> None:
    """Keep gradient checkpointing on in a frozen LLM that gradients still cross (the align stage
    trains the projector through it). transformers checkpoints a layer only while the layer is in
    train mode; this sets that flag on the layers themselves, not on their children, so dropout
    stays off as in any frozen part."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    for module in model.modules():
        if isinstance(module, GradientCheckpointingLayer) and module.gradient_checkpointing:
            module.training = True


def _padded(n: int) -> int:
    return -(-n // PAD_MULTIPLE) * PAD_MULTIPLE
