"""Malformed pickles read through `read_plain_pickle` (REFER's `refs(*).p`) all end in its documented
ValueError, never a TypeError, AttributeError or MemoryError, nor a huge allocation (issue 23 item 11)."""

from __future__ import annotations

import pickle
import random
import struct
import tracemalloc
from pathlib import Path

import pytest

from vlm_sweeps.eval.families.files import read_plain_pickle

GLOBAL_SET = b"c__builtin__\nset\n"
MALFORMED = {
    # truncated or not a pickle
    "empty": (b"", "ends .* before its STOP opcode"),
    "truncated": (pickle.dumps([{"a": 1}], protocol=2)[:-3], "truncated"),
    "cut inside a length": (b"\x80\x04\x8e\x05\x00", "truncated"),
    "cut inside a line": (b"I12", "truncated"),
    "unknown opcode": (b"\x80\x02\xff.", r"byte 2: b'\\xff' is not a pickle opcode"),
    "text": (b"not a pickle", "not a plain-data pickle"),
    # lengths past the end: the C unpickler allocated BINBYTES* lengths before reading them
    "BINBYTES8 2**60": (b"\x80\x04\x8e" + struct.pack("<Q", 2**60) + b"ab.", "claims 1152921504606846976 bytes, but 3"),
    "BINBYTES8 2**33": (b"\x80\x04\x8e" + struct.pack("<Q", 2**33) + b"ab.", "claims 8589934592 bytes"),
    "BYTEARRAY8 2**60": (b"\x80\x05\x96" + struct.pack("<Q", 2**60) + b"ab.", "claims"),
    "BINBYTES 2**32-1": (b"\x80\x03B" + struct.pack("<I", 2**32 - 1) + b"ab.", "claims 4294967295 bytes"),
    "BINUNICODE8 2**60": (b"\x80\x04\x8d" + struct.pack("<Q", 2**60) + b"ab.", "claims"),
    "LONG4 2**31-1": (b"\x80\x02\x8b" + struct.pack("<i", 2**31 - 1) + b"ab.", "claims 2147483647 bytes"),
    "LONG4 negative": (b"\x80\x02\x8b" + struct.pack("<i", -1) + b"ab.", "claims -1 bytes"),
    "BINSTRING negative": (b"\x80\x02T" + struct.pack("<i", -5) + b"ab.", "claims -5 bytes"),
    "FRAME 2**60": (b"\x80\x04\x95" + struct.pack("<Q", 2**60) + b"N.", "a frame of 1152921504606846976 bytes"),
    # memo indices a pickler never writes: the C unpickler sized (and zeroed) its memo by them
    "LONG_BINPUT 2**28": (b"\x80\x02Nr" + struct.pack("<I", 2**28) + b".", "memo index 268435456 is past"),
    "PUT 2**28": (b"Np268435456\n.", "memo index 268435456 is past"),
    "PUT not a number": (b"Npxx\n.", r"memo index b'xx' is not a number"),
    "GET missing": (b"\x80\x02h\x05.", "Memo value not found"),
    # opcodes applied to the wrong kind of object
    "REDUCE of a non-callable": (b"\x80\x02K\x01)R.", "TypeError: 'int' object is not callable"),
    "REDUCE set with two args": (b"\x80\x02" + GLOBAL_SET + b"K\x01K\x02\x86R.", "TypeError: set expected"),
    "REDUCE set of a dict": (b"\x80\x02" + GLOBAL_SET + b"]}a\x85R.", "TypeError: unhashable type: 'dict'"),
    "BUILD on a list": (b"\x80\x02]}b.", "AttributeError"),
    "SETITEM on a list": (b"\x80\x02]K\x01K\x02s.", "IndexError"),
    "APPEND to a dict": (b"\x80\x02}K\x01a.", "AttributeError: 'dict' object has no attribute 'append'"),
    "ADDITEMS to a list": (b"\x80\x04](K\x01\x90.", "AttributeError"),
    "unhashable dict key": (b"\x80\x02}]K\x01s.", "TypeError: unhashable type: 'list'"),
    "stack underflow": (b"\x80\x02a.", "stack underflow"),
    "EXT1 unregistered": (b"\x80\x02\x82\x01.", "ValueError: unregistered extension code 1"),
    "INT not a number": (b"Ixyz\n.", "ValueError: could not convert string to int"),
    "LONG of 5000 digits": (b"L" + b"9" * 5000 + b"L\n.", "ValueError: Exceeds the limit"),
    "FLOAT not a number": (b"Fxyz\n.", "ValueError: could not convert string to float"),
    "PROTO 9": (b"\x80\x09N.", "ValueError: unsupported pickle protocol: 9"),
    "not UTF-8": (b"\x80\x02U\x01\xff.", "UnicodeDecodeError"),
    # refused as before
    "a class": (b"\x80\x02cos\nsystem\n.", r"refusing to load os\.system"),
    "a persistent id": (b"Pabc\n.", "refusing a persistent id"),
}


@pytest.mark.parametrize("content, says", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_pickle_raises_the_documented_error(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "refs(unc).p"
    path.write_bytes(content)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"benchmark 'refcoco': .*refs\(unc\)\.p is not a plain-data pickle \(") as e:
            read_plain_pickle("refcoco", path, "")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert type(e.value) is ValueError  # the documented type itself, not a subclass such as UnicodeDecodeError
    assert e.match(says)
    assert peak < 1 << 20, f"{peak} bytes allocated reading a {len(content)}-byte pickle"


def test_plain_data_of_every_protocol_still_reads(tmp_path: Path) -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        data = [{"sent": "é", "box": (1, 2.5), "ids": {3}, "f": frozenset({4}), "big": 2**70, "n": None, "t": True},
                "x" * 70_000, list(range(1000))]  # long strings and lists: BINUNICODE, LONG_BINPUT, FRAME
        if protocol >= 3:
            data.append(b"bytes")
        (tmp_path / "p.p").write_bytes(pickle.dumps(data, protocol=protocol))
        assert read_plain_pickle("refcoco", tmp_path / "p.p", "") == data


def test_randomly_corrupted_pickles_raise_only_the_documented_error(tmp_path: Path) -> None:
    rng = random.Random(0)
    seeds = [pickle.dumps([{"a": [1, 2.5, "x" * 300, (1, 2), {3}, 2**70]}, None], protocol=p) for p in range(6)]
    path, outcomes = tmp_path / "f.p", set()
    tracemalloc.start()
    for _ in range(600):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[at] = rng.randrange(256)
            else:  # an opcode that claims a length or memo index, with random bytes for it
                data[at:at] = bytes([rng.choice(b"B\x8e\x96\x8d\x8brp\x95X")]) + rng.randbytes(8)
        path.write_bytes(bytes(data))
        try:
            read_plain_pickle("refcoco", path, "")
            outcomes.add("read")
        except ValueError as err:
            assert type(err) is ValueError and "is not a plain-data pickle" in str(err)
            outcomes.add("refused")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert outcomes == {"read", "refused"} and peak < 16 << 20  # no claimed length was allocated
