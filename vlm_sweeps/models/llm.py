"""LLM backbones: any transformers causal LM, from its option file alone.

An LLM option names the checkpoint (`id`), its transformers `model_type` and the architecture fields
of its config.json under `config:` (hidden_size, num_hidden_layers, num_attention_heads,
num_key_value_heads, intermediate_size, and whatever else the family needs: rms_norm_eps,
rope_theta, head_dim, sliding_window, ...). At `scale=tiny` that model type is built through
`AutoConfig.for_model` with the widths, depth and heads divided by `scale.llm_shrink` (same class,
same proportions) and random weights; at `scale=full` the public weights load from their local
folder (models/weights.py) and must be the declared architecture. Either way a pad token exists and
the embedding matrix covers the tokenizer plus one reserved row, padded to a multiple of 64 (the
anchor's choice, tensor-core friendly). The reserved row is the id a LLaVA export gives its `<image>`
token (export.py): the exported model has our rows, no more, so it is the same model over its whole
vocabulary. Prismatic's Llama-2 (32000 tokens + `<PAD>`, padded to 32064) has spare rows anyway; a
tokenizer whose size is a multiple of 64, such as the tiny one (512), would have none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

PAD_MULTIPLE = 64
RESERVED_ROWS = 1  # rows past the tokenizer that no text token uses: the LLaVA export's `<image>`
REQUIRED_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
# Fields the shrink divides: widths by shrink.width, depth by shrink.depth, heads by shrink.heads
# (head_dim as today: (hidden / heads) * shrink.heads / shrink.width); every other field is kept.
WIDTH_FIELDS = ("intermediate_size",)


@dataclass(frozen=True)
class LLMSpec:
    """What builds one LLM (components.py fills it from the `llm` option and the scale)."""

    name: str  # the option's name, for messages
    id: str  # Hub id of the checkpoint loaded at scale=full
    model_type: str  # a transformers model type (llama, mistral, qwen2, gemma2, phi3, ...)
    config: dict[str, Any] = field(default_factory=dict)  # config.json architecture fields
    tokenizer_size: int | None = None  # len() of the public tokenizer (dry-run estimates); None: config vocab_size


def is_causal_lm(model_type: str) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def causal_lm_types() -> list[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def spec_problems(spec: LLMSpec) -> list[str]:
    """What is wrong with an LLM option, before anything loads."""
    where = f"llm={spec.name}"
    if not is_causal_lm(spec.model_type):
        import difflib

        near = difflib.get_close_matches(spec.model_type, causal_lm_types(), n=5, cutoff=0.6)
        return [f"{where}: model_type {spec.model_type!r} is not a transformers causal LM type"
                + (f" (close: {', '.join(near)})" if near else "")
                + "; use the `model_type` of the checkpoint's config.json"]
    missing = [f for f in REQUIRED_FIELDS if f not in spec.config]
    found = []
    if missing:
        found.append(f"{where}: llm.config lacks {', '.join(missing)}; copy them from the checkpoint's config.json")
    bad = [f"{k}={spec.config[k]!r}" for k in (*REQUIRED_FIELDS, "num_key_value_heads", "head_dim")
           if k in spec.config and not (isinstance(spec.config[k], int) and spec.config[k] > 0)]
    if bad:
        found.append(f"{where}: llm.config fields must be positive integers: {', '.join(bad)}")
    return found


def tiny_config(spec: LLMSpec, shrink, vocab_size: int, max_seq_len: int):
    """A transformers config of `spec.model_type` with its declared proportions shrunk."""
    from transformers import AutoConfig

    fields = dict(spec.config)
    real_heads, hidden = fields["num_attention_heads"], fields["hidden_size"]
    heads = max(1, real_heads // shrink.heads)
    head_dim = max(2, fields.get("head_dim", hidden // real_heads) * shrink.heads // shrink.width)
    if "head_dim" in fields:  # a family whose width is not heads x head_dim (Gemma): both shrink
        fields["head_dim"] = head_dim
        fields["hidden_size"] = max(heads, hidden // shrink.width)
    else:
        fields["hidden_size"] = heads * head_dim
    for key in WIDTH_FIELDS:
        if key in fields:
            fields[key] = max(1, fields[key] // shrink.width)
    fields["num_hidden_layers"] = max(1, round(fields["num_hidden_layers"] / shrink.depth + 1e-9))
    fields["num_attention_heads"] = heads
    if "num_key_value_heads" in fields:
        fields["num_key_value_heads"] = max(1, fields["num_key_value_heads"] // shrink.heads)
    fields.setdefault("max_position_embeddings", max_seq_len)
    fields.setdefault("tie_word_embeddings", False)
    # the real init (std 0.02 ~ 1/sqrt(4096)) keeps std * sqrt(width) when the width shrinks
    fields["initializer_range"] = fields.get("initializer_range", 0.02) * math.sqrt(shrink.width)
    fields["vocab_size"] = vocab_size
    for token in ("bos_token_id", "eos_token_id", "pad_token_id"):  # the real vocabulary's ids do not apply
        fields.pop(token, None)
    config = AutoConfig.for_model(spec.model_type, **fields)
    for token in ("bos_token_id", "eos_token_id", "pad_token_id"):  # a family default beyond the tiny vocabulary
        value = getattr(config, token, None)
        if isinstance(value, int) and value >= vocab_size:
            setattr(config, token, None)
    config._attn_implementation = attention_of(config)
    return config


def attention_of(config: Any) -> str:
    """`sdpa` where the model class supports it, else `eager` (Gemma-2's logit soft-capping)."""
    from transformers import AutoModelForCausalLM

    model_class = AutoModelForCausalLM._model_mapping[type(config)]
    return "sdpa" if getattr(model_class, "_supports_sdpa", False) else "eager"


def build_llm(spec: LLMSpec, tokenizer, shrink, max_seq_len: int, pretrained: bool,
              dtype=None, *, models_dir: Path | None = None) -> nn.Module:
    """A causal LM whose vocabulary covers `tokenizer` (pad token included) and `RESERVED_ROWS`,
    padded to 64 (`vocab_rows`). `pretrained`: the checkpoint of `spec.id` found locally
    (models/weights.py), loaded in `dtype` (default float32: the master weights of bf16 mixed precision)."""
    from transformers import AutoModelForCausalLM

    problems = spec_problems(spec)
    if problems:
        raise ValueError("; ".join(problems))
    if pretrained:
        model = _load_pretrained(spec, models_dir, dtype)
        model.resize_token_embeddings(len(tokenizer) + RESERVED_ROWS, pad_to_multiple_of=PAD_MULTIPLE)
    else:
        model = AutoModelForCausalLM.from_config(tiny_config(spec, shrink, _padded(len(tokenizer)), max_seq_len))
        _reserve_rows(model, vocab_rows(len(tokenizer)))
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:  # a checkpoint's max_length would clash with the
        model.generation_config.max_length = None  # harness's max_new_tokens on every call (eval/harness.py)
    return model


def architecture_mismatches(spec: LLMSpec, loaded: Any) -> list[str]:
    """Declared config fields that the checkpoint's config does not have, as `key: declared != loaded`."""
    found = []
    if loaded.model_type != spec.model_type:
        found.append(f"model_type: {spec.model_type!r} != {loaded.model_type!r}")
    for key, value in spec.config.items():
        have = getattr(loaded, key, None)
        if have is None:  # transformers 5 keeps rope_theta & co. in rope_parameters
            have = (getattr(loaded, "rope_parameters", None) or {}).get(key)
        if isinstance(value, float) and isinstance(have, (int, float)):
            same = math.isclose(value, have, rel_tol=1e-6)
        elif isinstance(value, dict) and isinstance(have, dict):
            same = all(have.get(k) == v for k, v in value.items())
        else:
            same = value == have
        if not same:
            found.append(f"{key}: {value!r} != {have!r}")
    return found


def _load_pretrained(spec: LLMSpec, models_dir: Path | None, dtype) -> nn.Module:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from vlm_sweeps.models.weights import WeightSpec, resolve

    folder = resolve(WeightSpec(spec.id, "transformers", f"llm={spec.name}", needs_tokenizer=True), models_dir)
    wrong = architecture_mismatches(spec, AutoConfig.from_pretrained(folder, local_files_only=True))  # noqa
    if wrong:  # checked before gigabytes load
        raise ValueError(f"{folder}: the checkpoint is not the architecture llm={spec.name} declares "
                         f"(declared != checkpoint): {'; '.join(wrong)}; fix llm.id, llm.model_type or llm.config")
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    model, info = AutoModelForCausalLM.from_pretrained(folder, attn_implementation=attention_of(config),
                                                       local_files_only=True,
                                                       dtype=dtype or torch.float32, output_loading_info=True)
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


def _reserve_rows(model: nn.Module, rows: int) -> None:
    """Grow a randomly initialised LLM to `rows`, the new rows drawn as the others are (normal,
    `initializer_range`) but aside from the global random stream: every other weight, and what is
    drawn after it (the projector), is what a build sized for the tokenizer alone draws (the default
    tiny model, 512 tokens, keeps the weights it had before it reserved a row)."""
    import torch

    if model.get_input_embeddings().num_embeddings < rows:
        with torch.random.fork_rng(devices=[]):
            model.resize_token_embeddings(rows, mean_resizing=False)


def _padded(n: int) -> int:
    return -(-n // PAD_MULTIPLE) * PAD_MULTIPLE


def vocab_rows(tokenizer_size: int) -> int:
    """Embedding rows of an LLM built for a tokenizer of this size: its tokens and the reserved
    row(s), padded to a multiple of 64."""
    return _padded(tokenizer_size + RESERVED_ROWS)
