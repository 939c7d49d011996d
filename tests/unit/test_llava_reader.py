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


# The reader parses a record at a time from a window of the file's text (issue 23 item 11: a 1 GB
# file peaked at 9.2 GB RSS with json.loads); a window of a few bytes makes every record, string
# and number cross its edge, and the records and errors must still be json.loads's.
TURNS = [{"from": "human", "value": "<image>\nwhat is \u732b? \\ \" \u00e9"}, {"from": "gpt", "value": "a cat\n\U0001F600"}]
GOOD = [{"id": f"r{i}", "image": f"imgs/{i}.jpg", "conversations": TURNS * (i % 3 + 1)} for i in range(12)]
MALFORMED = [b"", b"  ", b"{}", b'"text"', b"[1", b"[1,]", b"[1e5 2]", b"[] x", b"\xef\xbb\xbf[]",
             b'[{"conversations": [{"from": "gpt", "value": "open}]}]',
             b'[{"conversations": [{"from": "gpt", "value": "a\\u12"}]}]',
             b'[\n{"conversations":\n [{"from": "gpt", "value": tru}]}]',
             b'[{"conversations": [{"from": "gpt", "value": "x"}]}\n{"id": 1}]',
             b'[{"conversations": 3},\n  {"conversations": [{"from": "gpt", "value": "x"}]] ',  # JSON error wins
             b'[{"conversations": [{"from": "gpt", "value": "x"}]} ,{"a": 1}, "\xe9"]']  # UTF-8 error wins


def json_loads_error(path):
    """The reader's error for `path` as json.loads of the whole file words it."""
    content = path.read_bytes()
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"{path} is not UTF-8 text (byte {err.start}: {err.reason})"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return f"{path} is not valid JSON: {err}"
    return f"{path}: expected a JSON list of records, got {type(value).__name__}" if not isinstance(value, list) else None


@pytest.mark.parametrize("window", [1, 3, 7, None])
def test_records_parsed_through_any_window_are_json_loads_records(tmp_path, monkeypatch, window):
    if window:
        monkeypatch.setattr("vlm_sweeps.data.llava._CHUNK", window)
    f = tmp_path / "mix.json"
    f.write_text(json.dumps(GOOD, ensure_ascii=False, indent=1), encoding="utf-8")
    records = load_llava(f)
    assert [(r.id, r.image, r.conversations) for r in records] == [
        (g["id"], tmp_path.resolve() / g["image"], tuple(g["conversations"])) for g in GOOD]
    assert [t["from"] for t in records[2].conversations] == ["human", "gpt"] * 3


@pytest.mark.parametrize("window", [1, 2, 5, None])
@pytest.mark.parametrize("content", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_files_raise_json_loads_error_through_any_window(tmp_path, monkeypatch, window, content):
    if window:
        monkeypatch.setattr("vlm_sweeps.data.llava._CHUNK", window)
    f = tmp_path / "mix.json"
    f.write_bytes(content)
    expected = json_loads_error(f)
    with pytest.raises(DataError) as raised:
        load_llava(f)
    if expected is None:  # valid JSON: a record's problem (the first), as before
        assert "record 0: missing 'conversations' list" in str(raised.value)
    else:
        assert str(raised.value).startswith(expected)


def test_a_record_is_held_compactly_and_pickles(tmp_path):
    import pickle

    f = write(tmp_path, GOOD)
    records = load_llava(f)
    record = records[1]
    assert not hasattr(record, "__dict__")  # slots: no dict per record
    assert record.turns[:2] == ("human", TURNS[0]["value"]) and isinstance(record.image_path, str)
    # one "human" and one "gpt" object for all turns of all records, not a string per turn
    assert len({id(role) for r in records for role in r.turns[0::2]}) == 2
    assert pickle.loads(pickle.dumps(record)) == record and record.is_multimodal
