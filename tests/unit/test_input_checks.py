"""Bad input is refused before anything runs, with a message naming the key or the file, the
record and the fix; nothing loops forever on an empty epoch."""

from __future__ import annotations

import json
import struct
import zlib

import pytest
from PIL import Image

from tests.conftest import compose
from vlm_sweeps.data.instruct import load_image
from vlm_sweeps.data.llava import DataError, check_images_exist, load_llava
from vlm_sweeps.data.samplers import batch_stream, epoch_batches, steps_for
from vlm_sweeps.validate import problems


@pytest.mark.parametrize("overrides, says, fix", [
    (["epochs=inf"], "epochs=inf: must be a positive finite number", "e.g. epochs=1"),
    (["epochs=0"], "epochs=0.0: must be a positive finite number", "e.g. epochs=1"),
    (["scale.finetune.batch_size=0"], "scale.finetune.batch_size=0: must be an integer >= 1",
     "scale.finetune.batch_size=16"),
    (["scale.finetune.batch_size=-4"], "scale.finetune.batch_size=-4: must be an integer >= 1",
     "scale.finetune.batch_size=16"),
    (["scale.finetune.lr=nan"], "scale.finetune.lr=nan: must be a positive finite learning rate",
     "scale.finetune.lr=2e-5"),
    (["scale.finetune.weight_decay=-0.1"], "scale.finetune.weight_decay=-0.1: must be a finite number >= 0",
     "0 turns it off"),
    (["scale.finetune.warmup_ratio=1"], "scale.finetune.warmup_ratio=1.0: must be in [0, 1)", "0: no warmup"),
    (["scale.finetune.max_grad_norm=inf"], "scale.finetune.max_grad_norm=inf: must be a positive finite",
     "scale.finetune.max_grad_norm=1.0"),
    (["optimization=two_stage", "scale.align.batch_size=0"], "scale.align.batch_size=0: must be an integer >= 1",
     "scale.align.batch_size=16"),
    (["optimization=two_stage", "scale.align_epochs=0"], "scale.align_epochs=0.0: must be a positive finite",
     "scale.align_epochs=1"),
    (["benchmarks.max_examples=0"], "benchmarks.max_examples=0: must be >= 1", "or null (all of them)"),
    (["benchmarks.batch_size=0"], "benchmarks.batch_size=0: must be an integer >= 1", "benchmarks.batch_size=16"),
    (["data.synthetic.n_finetune=0"], "data.synthetic.n_finetune=0: must be >= 1", "data.synthetic.n_finetune=96"),
    (["optimization=two_stage", "data.synthetic.n_align=0"], "data.synthetic.n_align=0: must be >= 1",
     "data.synthetic.n_align=96"),
    (["data.synthetic.n_eval=0"], "data.synthetic.n_eval=0: must be >= 1", "data.synthetic.n_eval=12"),
    (["run.log_every=0"], "run.log_every=0: must be >= 1", "run.log_every=10"),
    (["run.checkpoint_every=-1"], "run.checkpoint_every=-1: must be >= 0", "0: only at stage ends"),
    (["run.threads=0"], "run.threads=0: must be >= 1", "or null"),
    (["projector.kind=fused-gelu-mlp"], "projector=mlp: fused-gelu-mlp needs >= 2 backbones",
     "use projector=mlp"),
    (["projector=pool", "projector.tokens=10"], "projector=pool: projector.tokens=10: pool keeps a square grid",
     "e.g. 9 or 16"),
    (["projector=resampler", "projector.tokens=0"], "projector.tokens=0: must be an integer >= 1", "or null"),
    (["features.layers=[top]"], "features=penultimate: layers ['top']: each must be an integer block index",
     "`middle`"),
])
def test_bad_values_are_refused_before_the_run(overrides, says, fix):
    found = problems(compose(overrides))
    assert any(says in p and fix in p for p in found), found


def test_every_problem_is_reported_at_once():
    found = problems(compose(["epochs=inf", "scale.finetune.batch_size=0", "benchmarks.max_examples=0"]))
    assert len(found) == 3, found


def test_the_hyperparameters_of_a_stage_the_plan_does_not_train_are_not_checked():
    assert problems(compose(["optimization=single_stage", "scale.align.batch_size=0",
                             "data.synthetic.n_align=0"])) == []


def test_world_sizes_of_data_that_is_not_synthetic_are_not_checked():
    found = problems(compose(["data=llava_v15", "run.dry_run=true", "data.synthetic.n_finetune=0",
                              "benchmarks=paper", "data.synthetic.n_eval=0"]))
    assert not any("data.synthetic" in p for p in found), found


def test_a_single_backbone_mlp_on_a_fused_encoder_is_refused():
    found = problems(compose(["encoder=dinosiglip", "projector.kind=gelu-mlp"]))
    assert any("gelu-mlp takes one backbone" in p and "projector=mlp" in p for p in found), found
    # `mlp` is the MLP that fits the encoder, and any connector takes fused channels
    assert problems(compose(["encoder=dinosiglip"])) == problems(compose(["encoder=dinosiglip", "projector=linear"])) == []


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


def png_header(width, height):
    """A PNG whose header claims `width` x `height` (a few bytes on disk: no pixel is written)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


TURNS = [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]


def test_a_20000_pixel_square_image_is_refused_before_training_naming_record_and_fix(tmp_path):
    (tmp_path / "huge.png").write_bytes(png_header(20_000, 20_000))
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    path = write(tmp_path / "ft.json", [{"id": "fine", "image": "ok.png", "conversations": TURNS},
                                        {"id": "h1", "image": "huge.png", "conversations": TURNS}])
    with pytest.raises(DataError) as err:
        check_images_exist(load_llava(path), path)
    message = str(err.value)
    assert "ft.json: 1 of 2 records name images that cannot be used" in message
    assert f"record 1 (id h1): {(tmp_path / 'huge.png').resolve()}: too large for PIL" in message
    assert "400000000 pixels" in message and "downscale the image" in message and "MAX_IMAGE_PIXELS" in message


def test_missing_and_unreadable_images_are_reported_in_one_error(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    path = write(tmp_path / "ft.json", [{"id": "gone", "image": "gone.png", "conversations": TURNS},
                                        {"id": "e", "image": "empty.png", "conversations": TURNS}])
    with pytest.raises(DataError) as err:
        check_images_exist(load_llava(path), path)
    message = str(err.value)
    assert "1 of 2 records name image files that do not exist:\n  record 0 (id gone)" in message
    assert "fetch the missing images" in message
    assert "record 1 (id e)" in message and "not a readable image" in message and "replace the file" in message


def test_headers_are_not_opened_when_told_not_to(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    path = write(tmp_path / "ft.json", [{"id": "e", "image": "empty.png", "conversations": TURNS}])
    check_images_exist(load_llava(path), path, headers=False)  # existence only: no error


def test_a_decompression_bomb_read_during_training_names_the_file_and_the_fix(tmp_path):
    (tmp_path / "huge.png").write_bytes(png_header(20_000, 20_000))
    with pytest.raises(DataError) as err:
        load_image(tmp_path / "huge.png", "record 3 (id h)")
    message = str(err.value)
    assert message.startswith(f"record 3 (id h): image {tmp_path / 'huge.png'} is too large for PIL")
    assert "400000000 pixels" in message and "downscale" in message and "PIL.Image.MAX_IMAGE_PIXELS" in message


def test_drop_text_only_leaving_no_record_is_refused(tmp_path):
    path = write(tmp_path / "ft.json", [{"id": "t", "conversations": TURNS[1:]}])
    with pytest.raises(DataError, match=r"ft.json: every record is text-only and data.drop_text_only=true drops "
                                        r"them all.*data.drop_text_only=false"):
        load_llava(path, drop_text_only=True)


def test_supervision_is_checked_on_the_records_kept(tmp_path):
    # the only answers are in the text-only record, which drop_text_only removes
    (tmp_path / "a.png").write_bytes(b"")
    path = write(tmp_path / "ft.json", [{"id": "t", "conversations": TURNS[1:]},
                                        {"id": "m", "image": "a.png", "conversations": TURNS[:1]}])
    assert len(load_llava(path)) == 2
    with pytest.raises(DataError, match=r"no supervised token: .*ft.json: none of its 1 records kept "
                                        r"\(data.drop_text_only=true\) has a non-empty 'gpt' turn"):
        load_llava(path, drop_text_only=True)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("modalities, batch_size", [([True] * 4, 0), ([True] * 4, -4), ([], 4)])
def test_an_empty_epoch_raises_instead_of_looping(modalities, batch_size):
    says = "must be an integer >= 1" if batch_size < 1 else "an epoch would have no batch"
    with pytest.raises(ValueError, match=says):
        steps_for(modalities, batch_size, 1.0)
    with pytest.raises(ValueError, match=says):
        next(batch_stream(modalities, batch_size, seed=0))
    with pytest.raises(ValueError, match=says):
        epoch_batches(modalities, batch_size, 0, 0)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("epochs", [float("inf"), float("nan"), 0.0, -1.0])
def test_steps_for_refuses_epochs_that_never_end_or_never_start(epochs):
    with pytest.raises(ValueError, match="must be a positive finite number of passes"):
        steps_for([True] * 4, 2, epochs)


def test_a_key_no_setting_has_is_refused_not_ignored():
    found = problems(compose(["+run.name=baseline", "+tracking.experimnt=x", "+seeds=3"]))
    assert any(p.startswith("+run.name: no such setting") and "checkpoint_every" in p for p in found), found
    assert any(p.startswith("+tracking.experimnt: no such setting") and "did you mean tracking.experiment?" in p
               for p in found), found


def test_a_synthetic_world_too_large_for_the_disk_is_refused_and_a_long_one_announced(tmp_path, monkeypatch, caplog):
    import shutil
    from collections import namedtuple

    from vlm_sweeps.data.checks import check_world

    huge = compose(["data.synthetic.n_finetune=10000000"], root=tmp_path)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100e9, 80e9, 20e9))
    # 1200 + 10,000,000 + 9 benchmarks x 300 records, 4.6 KB and 1/450 s each
    with pytest.raises(DataError, match=r"n_eval=300: 10,003,900 records\) needs ~46\.0 GB and ~371 min to build, "
                                        r"but .* has 20\.0 GB free; nothing was trained"):
        check_world(huge)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100e9, 0, 100e9))
    with caplog.at_level("WARNING"):
        check_world(huge)
    assert "needs ~46." in caplog.text and "once, before training" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_world(compose([], root=tmp_path))  # the default world: ~1 min, said nowhere
    assert caplog.text == ""
