"""Prompt formats of each LLM family (the Prismatic prompt builders).

A conversation becomes a list of (text, is_target) segments: the assistant turns (with their end
token) are targets, everything else is context. The `<image>` marker is removed from the text; the
VLM puts the image patches right after BOS instead.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_TOKEN = "<image>"
VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.")
LLAMA2_SYSTEM = ("You are a helpful language and vision assistant. You are able to understand the visual "
                 "content that the user provides, and assist the user with a variety of tasks using "
                 "natural language.")


@dataclass(frozen=True)
class PromptFormat:
    first_user: str  # template for the first user turn, {msg}
    user: str  # template for later user turns
    assistant: str  # template for assistant turns, {msg} and {eos}


FORMATS: dict[str, PromptFormat] = {
    "base": PromptFormat("In: {msg}\nOut: ", "In: {msg}\nOut: ", "{msg}{eos}"),
    "vicuna": PromptFormat(VICUNA_SYSTEM + " USER: {msg} ASSISTANT: ", "USER: {msg} ASSISTANT: ", "{msg}{eos}"),
    "llama2_chat": PromptFormat("[INST] <<SYS>>\n" + LLAMA2_SYSTEM + "\n<</SYS>>\n\n{msg} [/INST] ",
                                "[INST] {msg} [/INST] ", "{msg}{eos}"),
    "mistral_instruct": PromptFormat("[INST] {msg} [/INST] ", "[INST] {msg} [/INST] ", "{msg}{eos}"),
    "phi": PromptFormat("Input: {msg}\nOutput: ", "Input: {msg}\nOutput: ", "{msg}\n{eos}"),
    # The chat templates of the newer instruct LLMs, written out (each model's tokenizer_config.json
    # chat_template, without a system turn). The assistant turn ends with the tokenizer's eos, which
    # for Llama-3 and Qwen2.5 instruct is the template's end-of-turn token (<|eot_id|>, <|im_end|>).
    "llama3": PromptFormat("<|start_header_id|>user<|end_header_id|>\n\n{msg}<|eot_id|>"
                           "<|start_header_id|>assistant<|end_header_id|>\n\n",
                           "<|start_header_id|>user<|end_header_id|>\n\n{msg}<|eot_id|>"
                           "<|start_header_id|>assistant<|end_header_id|>\n\n", "{msg}{eos}"),
    "chatml": PromptFormat("<|im_start|>user\n{msg}<|im_end|>\n<|im_start|>assistant\n",
                           "\n<|im_start|>user\n{msg}<|im_end|>\n<|im_start|>assistant\n", "{msg}{eos}"),
    # Gemma's eos (<eos>) is not its end of turn: the turn closes with <end_of_turn>, then eos
    "gemma": PromptFormat("<start_of_turn>user\n{msg}<end_of_turn>\n<start_of_turn>model\n",
                          "<start_of_turn>user\n{msg}<end_of_turn>\n<start_of_turn>model\n",
                          "{msg}<end_of_turn>\n{eos}"),
    # Phi-3's eos (<|endoftext|>) is not its end of turn either
    "phi3": PromptFormat("<|user|>\n{msg}<|end|>\n<|assistant|>\n", "<|user|>\n{msg}<|end|>\n<|assistant|>\n",
                         "{msg}<|end|>\n{eos}"),
}


def get_format(name: str) -> PromptFormat:
    if name not in FORMATS:
        raise ValueError(f"unknown prompt format {name!r}; known: {', '.join(FORMATS)}")
    return FORMATS[name]


def clean_user_message(msg: str) -> str:
    return msg.replace(IMAGE_TOKEN, "").strip()


def conversation_segments(fmt: PromptFormat, turns: list[dict], eos: str) -> list[tuple[str, bool]]:
    """LLaVA turns ([{"from": "human"|"gpt", "value": ...}]) -> [(text, is_target)]."""
    segments: list[tuple[str, bool]] = []
    n_user = 0
    for turn in turns:
        role, value = turn["from"], turn["value"]
        if role == "human":
            template = fmt.first_user if n_user == 0 else fmt.user
            segments.append((template.format(msg=clean_user_message(value)), False))
            n_user += 1
        elif role == "gpt":
            segments.append((fmt.assistant.format(msg=value.strip() or " ", eos=eos), True))
        else:
            raise ValueError(f"unknown conversation role {role!r} (expected 'human' or 'gpt')")
    return segments


def question_prompt(fmt: PromptFormat, question: str) -> str:
    """The context that precedes the model's answer to a single-turn question."""
    return fmt.first_user.format(msg=clean_user_message(question))


def fixed_strings() -> list[str]:
    """Every literal the formats add, so an in-process tokenizer learns them."""
    return [f.first_user + f.user + f.assistant for f in FORMATS.values()]
