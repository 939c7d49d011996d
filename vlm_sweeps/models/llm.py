"""LLM backbones through transformers' real classes (Llama, Mistral, Phi).

Architecture facts of each LLM the paper uses live in ARCHS (one line each). At `scale=tiny` the
same class is built with those proportions divided by `scale.llm_shrink` and random weights; at
`scale=full` the public weights load. Either way a pad token exists and the embedding matrix is
resized to a multiple of 64 (the anchor's choice, tensor-core friendly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class LLMArch:
    family: str  # llama | mistral | phi
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int


ARCHS: dict[str, LLMArch] = {
    "llama2-7b": LLMArch("llama", 4096, 32, 32, 32, 11008),
    "llama2-13b": LLMArch("llama", 5120, 40, 40, 40, 13824),
    "mistral-7b": LLMArch("mistral", 4096, 32, 32, 8, 14336),
    "phi-2": LLMArch("phi", 2560, 32, 32, 32, 10240),
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
              dtype=None) -> nn.Module:
    """A causal LM whose vocabulary covers `tokenizer` (pad token included), padded to 64."""
    from transformers import AutoModelForCausalLM

    if arch_name not in ARCHS:
        raise ValueError(f"unknown LLM architecture {arch_name!r}; known: {', '.join(ARCHS)}")
    if pretrained:
        model = AutoModelForCausalLM.from_pretrained(model_id, attn_implementation="sdpa", dtype=dtype)
    else:
        config = tiny_config(ARCHS[arch_name], shrink, _padded(len(tokenizer)), max_seq_len)
        model = AutoModelForCausalLM.from_config(config)
    if model.get_input_embeddings().num_embeddings < len(tokenizer) or pretrained:
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=PAD_MULTIPLE)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def _padded(n: int) -> int:
    return -(-n // PAD_MULTIPLE) * PAD_MULTIPLE
