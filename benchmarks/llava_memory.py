"""Peak memory (RSS) and seconds of reading a large LLaVA records JSON with `load_llava`.

Writes a LLaVA-format file of `--records` records (multi-turn, like LLaVA-665K: about 1.5 KB a
record, so the default 250,000 records make ~390 MB), then reads it in a fresh Python process,
which reports its peak RSS (ru_maxrss), its RSS before reading (interpreter and imports) and the
seconds `load_llava` took. `--unicode` puts one non-Latin-1 character in every 1000th record,
as multilingual mixes have: a whole-file `json.loads` then holds the text at 2-4 bytes a character.

Usage: python benchmarks/llava_memory.py [--records N] [--unicode] [--keep FILE]
Smoke run: python benchmarks/llava_memory.py --records 1000
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

WORDS = ("the a man woman dog cat red blue small large table street car sky tree holding sitting standing "
         "next to on in front of behind picture image shows what color is how many are there").split()

READER = """
import resource, sys, time
from pathlib import Path
from vlm_sweeps.data.llava import load_llava
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
records = load_llava(Path(sys.argv[1]))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(records), before, peak, seconds)
"""


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_file(path: Path, records: int, unicode: bool, seed: int = 0) -> None:
    """One record per line in a JSON list, written as it goes (the writer never holds the file)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        f.write("[\n")
        for i in range(records):
            turns = []
            for t in range(rng.choice((2, 4, 6, 8))):
                human = t % 2 == 0
                text = sentence(rng, rng.randint(5, 15) if human else rng.randint(15, 60))
                if t == 0:
                    text = "<image>\n" + text
                if unicode and i % 1000 == 0 and not human:
                    text += " \u732b"  # one CJK character: the file is no longer Latin-1
                turns.append({"from": "human" if human else "gpt", "value": text})
            record = {"id": f"{i:012d}", "image": f"coco/train2017/{i:012d}.jpg", "conversations": turns}
            f.write(("," if i else "") + json.dumps(record, ensure_ascii=False) + "\n")
        f.write("]\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=250_000)
    parser.add_argument("--unicode", action="store_true", help="a non-Latin-1 character every 1000 records")
    parser.add_argument("--keep", type=Path, help="write (or reuse, if it exists) the file here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "mix.json"
        if not path.exists():
            write_file(path, args.records, args.unicode)
        size = path.stat().st_size
        out = subprocess.run([sys.executable, "-c", READER, str(path)], capture_output=True, text=True, check=False,
                             cwd=Path(__file__).resolve().parents[1])
        if out.returncode != 0:
            sys.exit(out.stderr)
        n, before, peak, seconds = out.stdout.split()
    mib = 1 / 1024  # ru_maxrss is in KiB on Linux
    print(f"file: {size / 2**20:.0f} MiB, {int(n)} records{' (with non-Latin-1 text)' if args.unicode else ''}")
    print(f"RSS before reading: {int(before) * mib:.0f} MiB; peak RSS: {int(peak) * mib:.0f} MiB "
          f"(+{(int(peak) - int(before)) * mib:.0f} MiB, {(int(peak) - int(before)) * 1024 / size:.2f}x the file)")
    print(f"load_llava: {float(seconds):.1f} s")


if __name__ == "__main__":
    main()
