"""Bad input is refused before anything runs, with a message naming the key or the file, the
record and the fix; nothing loops forever on an empty epoch."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.conftest import compose
from vlm_sweeps.data.llava import DataError, check_images_exist, load_llava
from vlm_sweeps.data.samplers import batch_stream, epoch_batches, steps_for
from vlm_sweeps.validate import problems


@pytest.mark.parametrize("override, says", [
    ("epochs=inf", "epochs=inf: must be a positive finite number"),
    ("scale.finetune.batch_size=0", "scale.finetune.batch_size=0: must be an integer >= 1"),
    ("scale.finetune.batch_size=-4", "scale.finetune.batch_size=-4: must be an integer >= 1"),
    ("scale.finetune.lr=nan", "scale.finetune.lr=nan: must be a positive finite learning rate"),
    ("benchmarks.max_examples=0", "benchmarks.max_examples=0: must be >= 1"),
    ("data.synthetic.n_finetune=0", "data.synthetic.n_finetune=0: must be >= 1"),
    ("run.log_every=0", "run.log_every=0: must be >= 1"),
    ("encoder.projector=fused-gelu-mlp", "projector fused-gelu-mlp needs >= 2 backbones"),
])
def test_bad_values_are_refused_before_the_run(override, says):
    found = problems(compose([override]))
    assert any(says in p for p in found), found


def test_a_single_projector_on_a_fused_encoder_is_refused():
    found = problems(compose(["encoder=dinosiglip", "encoder.projector=linear"]))
    assert any("projector linear takes one backbone" in p and "fused-gelu-mlp" in p for p in found), found


def test_the_defaults_have_no_problem():
    assert problems(compose([])) == []


def write(path, records):
    path.write_text(json.dumps(records))
    return path


def test_an_empty_llava_file_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"ft.json holds no records"):
        load_llava(write(tmp_path / "ft.json", []))


def test_a_non_utf8_file_names_the_file_and_byte(tmp_path):
    path = tmp_path / "ft.json"
    content = b'[{"conversations": [{"from": "gpt", "value": "caf\xe9"}]}]'  # Latin-1, not UTF-8
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"ft.json is not UTF-8 text \(byte {content.index(0xE9)}:"):
        load_llava(path)


def test_a_non_string_turn_value_names_record_and_turn(tmp_path):
    records = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "ok"}]},
               {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": 3}]}]
    with pytest.raises(DataError, match=r"record 1 turn 1: 'value' must be a string, got int"):
        load_llava(write(tmp_path / "ft.json", records))


def test_records_without_an_assistant_turn_are_refused(tmp_path):
    records = [{"conversations": [{"from": "human", "value": "describe"}]},
               {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "  "}]}]
    with pytest.raises(DataError, match="no supervised token"):
        load_llava(write(tmp_path / "ft.json", records))


def test_oversized_and_unreadable_images_are_found_before_training(tmp_path, monkeypatch):
    Image.new("RGB", (40, 30)).save(tmp_path / "big.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    records = [{"id": name, "image": f"{name}.png", "conversations": [{"from": "human", "value": "<image>"},
                                                                       {"from": "gpt", "value": "a"}]}
               for name in ("ok", "big", "broken")]
    path = write(tmp_path / "ft.json", records)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # 40 x 30 = 1200 pixels: over it
    with pytest.raises(DataError) as err:
        check_images_exist(load_llava(path), path)
    message = str(err.value)
    assert "2 of 3 records" in message
    assert "record 1 (id big)" in message and "too large" in message and "MAX_IMAGE_PIXELS" in message
    assert "record 2 (id broken)" in message and "not a readable image" in message
    assert "id ok" not in message


@pytest.mark.timeout(10)
@pytest.mark.parametrize("modalities, batch_size", [([True] * 4, 0), ([True] * 4, -4), ([], 4)])
def test_an_empty_epoch_raises_instead_of_looping(modalities, batch_size):
    with pytest.raises(ValueError):
        steps_for(modalities, batch_size, 1.0)
    with pytest.raises(ValueError):
        next(batch_stream(modalities, batch_size, seed=0))
    with pytest.raises(ValueError):
        epoch_batches(modalities, batch_size, 0, 0)
