"""The LLaVA reader: validation, text-only records, and image paths that escape the root."""

import json

import pytest

from vlm_sweeps.data.llava import DataError, load_llava


def write(tmp_path, records):
    f = tmp_path / "mix.json"
    f.write_text(json.dumps(records))
    return f


def test_reads_multimodal_and_text_only_records(tmp_path):
    (tmp_path / "img.png").write_bytes(b"")
    f = write(tmp_path, [{"id": "a", "image": "img.png", "conversations": [{"from": "human", "value": "<image>\nq"},
                                                                          {"from": "gpt", "value": "a"}]},
                         {"id": "b", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}])
    records = load_llava(f)
    assert [r.is_multimodal for r in records] == [True, False]
    assert records[0].image == (tmp_path / "img.png").resolve()
    assert [r.id for r in load_llava(f, drop_text_only=True)] == ["a"]


def test_image_path_escaping_the_root_is_refused(tmp_path):
    f = write(tmp_path, [{"id": "x", "image": "../../etc/passwd",
                          "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}])
    with pytest.raises(DataError, match=r"record 0: image path '\.\./\.\./etc/passwd' escapes the image root"):
        load_llava(f)


@pytest.mark.parametrize("image", ["/etc/passwd", "imgs/../../secret.png", ""])
def test_absolute_and_climbing_image_paths_are_refused(tmp_path, image):
    f = write(tmp_path, [{"id": "x", "image": image,
                          "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}])
    with pytest.raises(DataError, match="escapes the image root"):
        load_llava(f)


def test_a_dataset_folder_linked_into_the_root_is_followed(tmp_path):
    # the usual cluster layout: the data root links shared dataset storage in (coco -> /datasets/coco)
    shared = tmp_path / "shared_storage" / "coco"
    shared.mkdir(parents=True)
    (shared / "1.jpg").write_bytes(b"")
    root = tmp_path / "root"
    root.mkdir()
    (root / "coco").symlink_to(shared)
    f = write(root, [{"id": "a", "image": "coco/./1.jpg",
                      "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]}])
    (record,) = load_llava(f)
    assert record.image == root.resolve() / "coco" / "1.jpg" and record.image.is_file()


def test_malformed_turns_name_the_record(tmp_path):
    f = write(tmp_path, [{"id": "x", "conversations": [{"from": "robot", "value": "q"}]}])
    with pytest.raises(DataError, match="record 0: each turn needs 'from' in"):
        load_llava(f)
