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


def test_malformed_turns_name_the_record(tmp_path):
    f = write(tmp_path, [{"id": "x", "conversations": [{"from": "robot", "value": "q"}]}])
    with pytest.raises(DataError, match="record 0: each turn needs 'from' in"):
        load_llava(f)
