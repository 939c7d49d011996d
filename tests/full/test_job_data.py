"""Bad data stops a full-scale job through the job path itself, with a message naming the file and
record, before any weights load: image paths escaping the data root, missing images, corrupt ones."""

import pytest

from tests.full.conftest import compose_full, write_llava
from vlm_sweeps import job
from vlm_sweeps.data.llava import DataError

TURNS = [{"from": "human", "value": "<image>\nWhat is this?"}, {"from": "gpt", "value": "A square."}]


def _mix(tmp_path, records):
    write_llava(tmp_path / "data" / "download" / "llava-v1.5-instruct", records, "llava_v1_5_mix665k.json")
    return [f"data=llava_v15", f"paths.data_root={tmp_path / 'data'}"]


def test_run_job_refuses_an_image_path_escaping_the_data_root(tmp_path, models_dir, clean_env, monkeypatch):
    overrides = _mix(tmp_path, [{"id": "evil", "image": "../../etc/passwd", "conversations": TURNS}])
    cfg = compose_full(overrides + [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"], tmp_path, models_dir)

    def no_setup(cfg):
        raise AssertionError("the model was about to load")

    monkeypatch.setattr(job, "setup", no_setup)
    with pytest.raises(DataError, match=r"record 0: image path '\.\./\.\./etc/passwd' escapes the image root"):
        job.run_job(cfg)


def test_missing_images_are_listed_by_file_and_record(tmp_path):
    folder = tmp_path / "data" / "download" / "llava-v1.5-instruct"
    (folder / "coco").mkdir(parents=True)
    (folder / "coco" / "present.png").write_bytes(b"")
    records = [{"id": "a", "image": "coco/present.png", "conversations": TURNS},
               {"id": "b", "image": "coco/gone.png", "conversations": TURNS}]
    cfg = compose_full(_mix(tmp_path, records), tmp_path)
    with pytest.raises(DataError, match=r"1 of 2 records name image files that do not exist:\n  record 1 \(id b\): "
                                        r".*coco/gone\.png"):
        job.check_data(cfg)  # what run_job calls before setup


def test_a_corrupt_image_is_reported_with_its_file_and_sample(tmp_path, small_world):
    from vlm_sweeps.data.instruct import InstructDataset
    from vlm_sweeps.data.llava import load_llava
    from vlm_sweeps.models.prompts import get_format

    _, tok = small_world
    folder = tmp_path / "mix"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    file = write_llava(folder, [{"id": "t", "conversations": TURNS[1:]},
                                {"id": "x7", "image": "broken.jpg", "conversations": TURNS}])
    ds = InstructDataset(load_llava(file), tok, get_format("base"), [], 64, 4)
    with pytest.raises(DataError, match=r"record 1 \(id x7\): cannot read image .*broken\.jpg"):
        ds[1]
