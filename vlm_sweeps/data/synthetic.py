"""The synthetic world: deterministic scenes of coloured shapes and a printed word, in varied aspect
ratios (so that resize strategies matter: crop cuts off objects near the borders, naive warps shapes).

From one seed it writes, under one folder keyed by its settings:
- `align.json`, `finetune.json`: LLaVA-format instruction data (read back by data/llava.py, the same
  reader as real mixes); finetune records hold several turns of different task families, and some
  records are language-only (the ShareGPT analogue);
- `eval/<benchmark>.json`: held-out scenes for the synthetic suite (synth_vqa, synth_count,
  synth_spatial, synth_pope, synth_ref, synth_text), read by eval/synthetic.py;
- `corpus.txt`: every text, for the in-process tokenizer.
Generated once and cached: jobs of a sweep share it; concurrent creators race safely.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from vlm_sweeps.models.prompts import fixed_strings

VERSION = 5  # bump when the generator changes what it writes
COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 200, 30),
          "purple": (140, 60, 190)}
SHAPES = ("circle", "square", "triangle")
WORDS = ("cat", "sun", "box", "map", "pen", "cup", "key", "bus")
# aspect ratios up to 1.6:1: crop loses the borders, naive warps, letterbox shrinks; objects stay
# large enough (>= 2 patches across at tiny scale) for shapes to be told apart
CANVASES = ((96, 96), (128, 80), (80, 128), (112, 80), (80, 112))
OBJECT_SIDE = (0.34, 0.48)  # object side as a fraction of the canvas's short side
SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
YES_NO = "\nAnswer yes or no."
TRUE_FALSE = " Is this statement True or False?"
REF_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes: "
CAPTION_PROMPTS = ("Describe the image briefly.", "Give a short caption of the picture.",
                   "Summarize the visual content of the image.")
TASKS = ("vqa", "count", "spatial", "pope", "ref", "text")
BENCHMARK_TASK = {"synth_vqa": "vqa", "synth_count": "count", "synth_spatial": "spatial", "synth_pope": "pope",
                  "synth_ref": "ref", "synth_text": "text"}
MAX_COUNT = 4  # most objects a scene can hold (and the largest count answer)


@dataclass(frozen=True)
class Obj:
    color: str
    shape: str
    box: tuple[int, int, int, int]  # pixel x1, y1, x2, y2

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


@dataclass(frozen=True)
class Scene:
    size: tuple[int, int]
    objects: tuple[Obj, ...]
    word: str
    word_box: tuple[int, int, int, int]


def _overlaps(a, b, margin=2) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1])


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default(size=16)


def make_scene(rng: random.Random, max_objects: int = MAX_COUNT) -> Scene:
    w, h = rng.choice(CANVASES)
    font = _font()
    word = rng.choice(WORDS)
    left, top, right, bottom = font.getbbox(word)
    tw, th = right - left, bottom - top
    wx, wy = rng.randint(0, w - tw - 1), rng.randint(0, h - th - 1)
    word_box = (wx, wy, wx + tw, wy + th)
    taken = [word_box]
    objects: list[Obj] = []
    kinds = rng.sample([(c, s) for c in COLORS for s in SHAPES], k=rng.randint(1, max_objects))
    for color, shape in kinds:
        for _ in range(50):  # rejection sampling of a free spot
            side = int(min(w, h) * rng.uniform(*OBJECT_SIDE))
            x, y = rng.randint(0, w - side), rng.randint(0, h - side)
            box = (x, y, x + side, y + side)
            if not any(_overlaps(box, t) for t in taken):
                taken.append(box)
                objects.append(Obj(color, shape, box))
                break
    if not objects:
        return make_scene(rng, max_objects)
    return Scene((w, h), tuple(objects), word, word_box)


def draw(scene: Scene) -> Image.Image:
    image = Image.new("RGB", scene.size, (238, 238, 232))
    pen = ImageDraw.Draw(image)
    for obj in scene.objects:
        x1, y1, x2, y2 = obj.box
        fill = COLORS[obj.color]
        if obj.shape == "circle":
            pen.ellipse(obj.box, fill=fill)
        elif obj.shape == "square":
            pen.rectangle((x1, y1, x2 - 1, y2 - 1), fill=fill)
        else:
            pen.polygon([((x1 + x2) / 2, y1), (x2, y2 - 1), (x1, y2 - 1)], fill=fill)
    font = _font()
    left, top, _, _ = font.getbbox(scene.word)
    pen.text((scene.word_box[0] - left, scene.word_box[1] - top), scene.word, fill=(20, 20, 20), font=font)
    return image


def _norm_box(scene: Scene, box) -> list[float]:
    w, h = scene.size
    return [round(box[0] / w, 2), round(box[1] / h, 2), round(box[2] / w, 2), round(box[3] / h, 2)]


def box_text(box: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in box) + "]"


def _relation(a: Obj, b: Obj, rng: random.Random) -> tuple[str, str] | None:
    """A relation that clearly holds between a and b, and its opposite."""
    (ax, ay), (bx, by) = a.center, b.center
    options = []
    if abs(ax - bx) > 8:
        options.append(("left of", "right of") if ax < bx else ("right of", "left of"))
    if abs(ay - by) > 8:
        options.append(("above", "below") if ay < by else ("below", "above"))
    return rng.choice(options) if options else None


def task_example(task: str, scene: Scene, rng: random.Random) -> dict | None:
    """One question about `scene`: {question, answer, ...extra for benchmarks} or None if the
    scene cannot support that task."""
    objs = scene.objects
    if task == "vqa":
        obj = rng.choice(objs)
        same_shape = [o for o in objs if o.shape == obj.shape]
        same_color = [o for o in objs if o.color == obj.color]
        if len(same_shape) == 1 and (len(same_color) > 1 or rng.random() < 0.5):
            return {"question": f"What color is the {obj.shape}?" + SHORT_ANSWER, "answer": obj.color,
                    "alternatives": [c for c in COLORS if c != obj.color]}
        if len(same_color) == 1:
            return {"question": f"What shape is the {obj.color} object?" + SHORT_ANSWER, "answer": obj.shape,
                    "alternatives": [s for s in SHAPES if s != obj.shape]}
        return None
    if task == "count":
        shape = rng.choice(SHAPES)
        n = sum(o.shape == shape for o in objs)
        return {"question": f"How many {shape}s are there?" + SHORT_ANSWER, "answer": str(n),
                "choices": [str(i) for i in range(MAX_COUNT + 1)]}
    if task == "spatial":
        if len(objs) < 2:
            return None
        a, b = rng.sample(list(objs), 2)
        rel = _relation(a, b, rng)
        if rel is None:
            return None
        truth = rng.random() < 0.5
        statement = f"The {a.name} is {rel[0] if truth else rel[1]} the {b.name}."
        return {"question": statement + TRUE_FALSE, "answer": "True" if truth else "False",
                "choices": ["True", "False"]}
    if task == "pope":
        # POPE's three negative splits: random (neither the colour nor the shape is in the scene),
        # popular (the shape is there in another colour), adversarial (the colour is there on
        # another shape); positives are objects in the scene, half of all questions
        present = {(o.color, o.shape) for o in objs}
        colors_here, shapes_here = {c for c, _ in present}, {s for _, s in present}
        if rng.random() < 0.5:
            (color, shape), answer = rng.choice(sorted(present)), "yes"
        else:
            split = rng.choice(("random", "popular", "adversarial"))
            absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
            pools = {"random": [(c, s) for c, s in absent if c not in colors_here and s not in shapes_here],
                     "popular": [(c, s) for c, s in absent if s in shapes_here],
                     "adversarial": [(c, s) for c, s in absent if c in colors_here]}
            (color, shape), answer = rng.choice(pools[split] or absent), "no"
        return {"question": f"Is there a {color} {shape} in the image?" + YES_NO, "answer": answer,
                "choices": ["yes", "no"]}
    if task == "ref":
        unique = [o for o in objs if sum(p.name == o.name for p in objs) == 1]
        obj = rng.choice(unique)
        box = _norm_box(scene, obj.box)
        return {"question": REF_PROMPT + f"the {obj.name}.", "answer": box_text(box), "box": box}
    if task == "text":
        return {"question": "What word is written in the image?" + SHORT_ANSWER, "answer": scene.word,
                "alternatives": [w for w in WORDS if w != scene.word]}
    raise ValueError(f"unknown synthetic task {task!r}; known: {', '.join(TASKS)}")


def caption(scene: Scene) -> str:
    parts = []
    for obj in scene.objects:
        x, y = obj.center
        w, h = scene.size
        where = ("top" if y < h / 3 else "bottom" if y > 2 * h / 3 else "middle") + " " + \
                ("left" if x < w / 3 else "right" if x > 2 * w / 3 else "center")
        parts.append(f"a {obj.name} at the {where}")
    return ", ".join(parts) + f", and the word {scene.word}."


def language_only(rng: random.Random) -> list[dict]:
    """A short text-only conversation (the ShareGPT analogue)."""
    turns = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(4)
        if kind == 0:
            a, b = rng.randint(0, 9), rng.randint(0, 9)
            q, ans = f"What is {a} plus {b}?", str(a + b)
        elif kind == 1:
            q, ans = rng.choice([("Which shape has three sides?", "triangle"), ("Which shape has four equal sides?",
                                 "square"), ("Which shape is perfectly round?", "circle")])
        elif kind == 2:
            word = rng.choice(WORDS)
            q, ans = f"Spell the word {word} backwards.", word[::-1]
        else:
            q, ans = rng.choice([("What is the opposite of left?", "right"), ("What is the opposite of above?",
                                 "below"), ("What color is the sky on a clear day?", "blue"),
                                 ("What color is grass?", "green")])
        turns += [{"from": "human", "value": q}, {"from": "gpt", "value": ans}]
    return turns


def annotator_answers(answer: str, alternatives: list[str], rng: random.Random) -> list[str]:
    """Ten VQA-style human answers: mostly the truth in varied surface forms, a few mistakes."""
    forms = [answer, answer.capitalize(), answer + ".", f"the {answer}"]
    n_right = rng.randint(6, 10)
    return [rng.choice(forms) for _ in range(n_right)] + [rng.choice(alternatives) for _ in range(10 - n_right)]


class _Writer:
    def __init__(self, folder: Path):
        self.folder = folder
        (folder / "images").mkdir(parents=True, exist_ok=True)
        self.texts: list[str] = []

    def image(self, name: str, scene: Scene) -> str:
        rel = f"images/{name}.png"
        draw(scene).save(self.folder / rel)
        return rel


def _without_format_hint(question: str) -> str:
    for hint in (SHORT_ANSWER, YES_NO):
        if question.endswith(hint):
            return question[: -len(hint)]
    return question


def _finetune_record(i: int, scene: Scene, writer: _Writer, rng: random.Random, tasks: dict,
                     n_turns: tuple[int, int]) -> dict:
    visual = [t for t in TASKS if tasks.get(t, 0) > 0]
    weights = [tasks[t] for t in visual]
    turns: list[dict] = []
    for _ in range(rng.randint(*n_turns)):
        example = task_example(rng.choices(visual, weights)[0], scene, rng)
        if example is None:
            continue
        # the answer-format instruction only opens a conversation (later turns keep the format);
        # repeating it in every turn would make it a third of the tokens trained on
        q = "<image>\n" + example["question"] if not turns else _without_format_hint(example["question"])
        turns += [{"from": "human", "value": q}, {"from": "gpt", "value": example["answer"]}]
    if not turns:
        example = task_example("text", scene, rng)
        turns = [{"from": "human", "value": "<image>\n" + example["question"]},
                 {"from": "gpt", "value": example["answer"]}]
    return {"id": f"ft{i}", "image": writer.image(f"ft{i}", scene), "conversations": turns}


def generate(folder: Path, conf) -> None:
    """Write the whole world for settings `conf` (data.synthetic) into `folder`."""
    rng = random.Random(conf.seed)
    writer = _Writer(folder)
    tasks = dict(conf.tasks)
    align = []
    for i in range(conf.n_align):
        scene = make_scene(rng, conf.max_objects)
        align.append({"id": f"al{i}", "image": writer.image(f"al{i}", scene), "conversations": [
            {"from": "human", "value": "<image>\n" + rng.choice(CAPTION_PROMPTS)},
            {"from": "gpt", "value": caption(scene)}]})
    finetune = []
    # language-only records: their weight against the visual families' total (1/7 by default)
    text_weight = tasks.get("text_only", 0)
    p_text = text_weight / max(text_weight + sum(tasks.get(t, 0) for t in TASKS), 1e-9)
    for i in range(conf.n_finetune):
        if rng.random() < p_text:
            finetune.append({"id": f"lo{i}", "conversations": language_only(rng)})
        else:
            finetune.append(_finetune_record(i, make_scene(rng, conf.max_objects), writer, rng, tasks,
                                             tuple(conf.turns)))
    (folder / "align.json").write_text(json.dumps(align))
    (folder / "finetune.json").write_text(json.dumps(finetune))
    (folder / "eval").mkdir(exist_ok=True)
    eval_rng = random.Random(conf.seed + 1_000_003)  # held-out scenes
    texts = [t["value"] for r in align + finetune for t in r["conversations"]]
    for bench, task in BENCHMARK_TASK.items():
        items, attempts = [], 0
        while len(items) < conf.n_eval:
            attempts += 1
            if attempts > 50 * conf.n_eval:  # a task these settings cannot pose (e.g. spatial, 1 object)
                raise ValueError(f"synthetic world: cannot pose {task} questions with max_objects={conf.max_objects}")
            scene = make_scene(eval_rng, conf.max_objects)
            ex = task_example(task, scene, eval_rng)
            if ex is None:
                continue
            qid = f"{bench}-{len(items)}"
            item = {"qid": qid, "image": writer.image(qid, scene), "question": ex["question"], "answer": ex["answer"]}
            if "alternatives" in ex:
                item["answers"] = annotator_answers(ex["answer"], ex["alternatives"], eval_rng)
            item.update({k: ex[k] for k in ("choices", "box") if k in ex})
            items.append(item)
            texts += [ex["question"], ex["answer"]]
        (folder / "eval" / f"{bench}.json").write_text(json.dumps(items))
    texts += fixed_strings()
    # one JSON string per line: texts keep their newlines (prompt formats use them)
    (folder / "corpus.txt").write_text("\n".join(json.dumps(t) for t in texts))


def world_key(conf) -> str:
    from omegaconf import OmegaConf

    settings = asdict(conf) if is_dataclass(conf) else OmegaConf.to_container(conf, resolve=True)
    blob = json.dumps({"version": VERSION, **settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def ensure_world(cache_dir: Path, conf) -> Path:
    """The world's folder for `conf`, generated on first use (atomic: built aside, then renamed)."""
    target = Path(cache_dir) / "synthetic" / world_key(conf)
    if (target / "corpus.txt").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-world-"))
    try:
        generate(tmp, conf)
        os.rename(tmp, target)
    except OSError:
        if not (target / "corpus.txt").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
