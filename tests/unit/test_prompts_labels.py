"""Prompt formats per LLM family and loss masking: only assistant turns are targets."""

import pytest

from vlm_sweeps.data.instruct import encode_segments
from vlm_sweeps.models.prompts import FORMATS, conversation_segments, get_format, question_prompt

TURNS = [{"from": "human", "value": "<image>\nWhat color is the circle?"}, {"from": "gpt", "value": "red"},
         {"from": "human", "value": "How many squares?"}, {"from": "gpt", "value": "2"}]


def test_formats_match_the_anchor_prompt_builders():
    assert question_prompt(get_format("base"), "<image>\nHi") == "In: Hi\nOut: "
    assert question_prompt(get_format("vicuna"), "Hi").endswith(" USER: Hi ASSISTANT: ")
    assert question_prompt(get_format("vicuna"), "Hi").startswith("A chat between a curious user")
    assert question_prompt(get_format("llama2_chat"), "Hi").startswith("[INST] <<SYS>>\n")
    assert question_prompt(get_format("mistral_instruct"), "Hi") == "[INST] Hi [/INST] "
    assert question_prompt(get_format("phi"), "Hi") == "Input: Hi\nOutput: "


def test_newer_formats_match_the_models_chat_templates():
    """Expected strings written from each model's tokenizer_config.json chat_template (no system
    turn, add_generation_prompt=True), minus the BOS the tokenizer adds itself."""
    assert question_prompt(get_format("llama3"), "<image>\nHi") == (
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert question_prompt(get_format("chatml"), "Hi") == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert question_prompt(get_format("gemma"), "Hi") == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    assert question_prompt(get_format("phi3"), "Hi") == "<|user|>\nHi<|end|>\n<|assistant|>\n"
    # a second turn follows the first assistant answer as the templates write it
    segments = conversation_segments(get_format("chatml"), TURNS, "<|im_end|>")
    assert "".join(s for s, _ in segments) == (
        "<|im_start|>user\nWhat color is the circle?<|im_end|>\n<|im_start|>assistant\nred<|im_end|>"
        "\n<|im_start|>user\nHow many squares?<|im_end|>\n<|im_start|>assistant\n2<|im_end|>")


# formats whose end of turn is not the tokenizer's eos: the turn closes with it, then eos
END_OF_TURN = {"gemma": "<end_of_turn>", "phi3": "<|end|>"}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_only_assistant_turns_are_targets(name, small_world):
    _, tok = small_world
    segments = conversation_segments(get_format(name), TURNS, tok.eos_token)
    assert [t for _, t in segments] == [False, True, False, True]
    assert "<image>" not in "".join(s for s, _ in segments)
    ids, labels = encode_segments(tok, segments, max_len=10_000)
    assert ids[0] == tok.bos_token_id and labels[0] == -100
    targets = [int(i) for i, l in zip(ids, labels) if l != -100]
    end = END_OF_TURN.get(name, "")
    assert tok.decode(targets, skip_special_tokens=False).replace(" ", "").replace("\n", "") == f"red{end}</s>2{end}</s>"


def test_truncation_keeps_the_budget(small_world):
    _, tok = small_world
    ids, labels = encode_segments(tok, conversation_segments(get_format("vicuna"), TURNS, tok.eos_token), 12)
    assert len(ids) == len(labels) == 12


def test_tokenizer_keeps_newlines_and_splits_digits(small_world):
    _, tok = small_world
    ids = tok("a\nb 12", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(tok("[0.25, 0.50]", add_special_tokens=False)["input_ids"]) == "[0.25, 0.50]"
