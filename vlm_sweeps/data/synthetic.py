"""The synthetic world: deterministic scenes of coloured shapes and a printed word, in varied aspect
ratios, plus three families of scenes with a *planted* effect, so that the paper's image axes matter at
tiny scale for a reason we can state (README "The synthetic world"; tests/integration/test_planted_effects.py):

- `shape` (synth_shape), what `naive` resizing distorts: a 3 x 3 grid of one shape, circles or
  ellipses, squares or rectangles ("Is each shape a circle or an ellipse?"). Elongated shapes are
  ELONGATION (2) times longer than wide, the aspect ratio of the non-square canvases (128x64, 64x128),
  and lie along the long side there; half the canvases are square, where they lie either way. The
  layout is the same in canvas-relative units on every canvas, so warping to a square turns an
  ellipse on a wide canvas into a circle and a circle into an ellipse: after `naive` each picture is
  as often one answer as the other (chance, 50 %), while `letterbox` and `crop` keep the true aspect
  ratio (crop keeps the middle row or column whole). A second cue rides along: an elongated shape
  covers half the area of a round one on a square canvas and twice it on a non-square one. After
  `letterbox`, which shrinks non-square canvases, the elongated pictures' amount of colour lies
  between the two round kinds', so it alone answers; after `crop`, which zooms them, it is reversed
  from square to non-square canvases. The tiny model answers from the amount: `crop` scores near
  chance at tiny scale (issue 28; tests/unit/test_shape_cue.py). Shapes of equal area remove the
  cue; tried (smaller, to keep gaps between neighbours), the tiny model then learnt the shapes under
  no strategy (letterbox 54 % at the default budget, one seed), so the planted effect stays this one.
- `margin` (synth_margin), what `crop` loses: one object, entirely in the part of a 144x72 or 72x144
  canvas outside its central square, which a centre crop cuts away ("What color is the small shape at
  the edge of the image?"; 5 colours, chance 20 %).
- `fine` (synth_fine), what a lower resolution loses: a square canvas mostly covered by fine stripes
  (FINE_PERIOD pixels apart, horizontal or vertical; chance 50 %): about 2.5 input pixels apart at the
  336/384 px encoders' tiny input (49-56 px), under 2 (past the sampling limit, blurred by antialiased
  resizing) at the 224 px encoders' (35 px). Square, so that the resize strategy does not matter for it.

General scenes hold 1-3 objects of distinct colours and a word, on a background that shades with
position (`backdrop`); their questions (vqa, count, pope, ref, text) come several to a record. Spatial
questions ("Is the red shape on the left or the right of the image?") are about a lone object of a scene
of their own, as the planted families' are: about scenes of several, the tiny model stays at chance
within the default budget.

From one seed it writes, under one folder keyed by its settings and the generator's VERSION:
- `align.json`, `finetune.json`: LLaVA-format instruction data (read back by data/llava.py, the same
  reader as real mixes); finetune records of a general scene hold several turns of different families,
  those of OWN_SCENES one question about a scene of its own, and some records are language-only (the
  ShareGPT analogue); every family's share is its weight in `data.synthetic.tasks`;
- `eval/<benchmark>.json`: held-out scenes for the synthetic suite (BENCHMARK_TASK), read by
  eval/synthetic.py;
- `corpus.txt`: every text, for the in-process tokenizer.
Generated once and cached: jobs of a sweep share it; concurrent creators race safely.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from vlm_sweeps import atomic
from vlm_sweeps.models.prompts import fixed_strings

# Part of the world's cache key (world_key): bump it whenever the generator changes what it writes, so
# that no job reads a world cached by an older generator (tests/unit/test_synthetic_world.py pins a
# fingerprint of the output to this number and fails when the generator changes without it).
VERSION = 6
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
REF_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes: "
CAPTION_PROMPTS = ("Describe the image briefly.", "Give a short caption of the picture.",
                   "Summarize the visual content of the image.")
TASKS = ("vqa", "count", "pope", "ref", "text")  # questions about the general scenes
PLANTED = ("shape", "margin", "fine")  # planted effects (see the module docstring)
# families whose records are one question about a scene of their own: spatial asks where a lone object
# lies (about a scene of several, the tiny model stays at chance within the default budget)
OWN_SCENES = ("spatial", *PLANTED)
BENCHMARK_TASK = {"synth_vqa": "vqa", "synth_count": "count", "synth_spatial": "spatial", "synth_pope": "pope",
                  "synth_ref": "ref", "synth_text": "text", "synth_shape": "shape", "synth_margin": "margin",
                  "synth_fine": "fine"}
# planted scenes
SQUARE, WIDE, TALL = (96, 96), (128, 80), (80, 128)
# shape scenes: round or elongated shapes, ELONGATION times longer than wide, the aspect ratio of their
# non-square canvases; half the canvases square (see the module docstring)
ELONGATION = 2.0
SHAPE_CANVASES = (SQUARE, SQUARE, (128, 64), (64, 128))
SHAPE_PAIRS = {"circle": "ellipse", "square": "rectangle"}  # round one -> its elongated one
PLANTED_SHAPES = ("circle", "ellipse", "square", "rectangle")
SHAPE_GRID = 3  # SHAPE_GRID x SHAPE_GRID copies of the shape over the canvas: more evidence per image
SHAPE_SIDE = (0.2, 0.26)  # the short side of a shape / the canvas' short side
SHAPE_JITTER = 0.03  # how far a shape's centre may lie from its cell's, / the canvas' width or height
MARGIN_CANVASES = ((144, 72), (72, 144))  # margin scenes: a centre crop cuts 36 px off each end
MARGIN_SIDE = (0.35, 0.45)  # margin scenes: object side / canvas short side (fits in the margin)
MARGIN_GAP = 3  # pixels between a margin object and the central square (resampling reaches that far)
FINE_PERIOD = 5  # fine scenes: pixels from one stripe to the next (2 px lines, 3 px gaps)
FINE_SIDE = (0.75, 0.95)  # fine scenes: the striped patch's side / the canvas' side
MAX_COUNT = 4  # most objects a scene can hold (and the largest count answer)


@dataclass(frozen=True)
class Obj:
    color: str
    shape: str
    box: tuple[int, int, int, int]  # pixel x1, y1, x2, y2
    pattern: str = ""  # "" solid; "horizontal" / "vertical": fine stripes (fine scenes)

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
    word: str = ""  # "" (planted scenes): no word
    word_box: tuple[int, int, int, int] = (0, 0, 0, 0)
    shaded: bool = False  # the background shades with position (general scenes: see `backdrop`)


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
    # one colour per object: a colour names an object (what a tiny model tells apart best), shapes repeat
    n = rng.randint(1, max_objects)
    kinds = list(zip(rng.sample(list(COLORS), k=n), rng.choices(SHAPES, k=n)))
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
    return Scene((w, h), tuple(objects), word, word_box, shaded=True)


BACKGROUND = (238, 238, 232)
SHADE = 36  # general scenes: the background's red falls by this much from left to right, its blue
# rises by it from top to bottom


def backdrop(size: tuple[int, int], shaded: bool) -> Image.Image:
    """The empty canvas. General and spatial scenes shade from left to right and from top to bottom
    (as a photograph's context does: sky above, ground below), so that each patch also shows where
    it lies; planted scenes stay plain, their answers must not depend on it."""
    if not shaded:
        return Image.new("RGB", size, BACKGROUND)
    across = Image.linear_gradient("L").rotate(90).resize(size)  # 0 at the left .. 255 at the right
    down = Image.linear_gradient("L").resize(size)  # 0 at the top .. 255 at the bottom
    red = across.point(lambda v: BACKGROUND[0] - round(SHADE * v / 255))
    blue = down.point(lambda v: BACKGROUND[2] - SHADE + round(SHADE * v / 255))
    return Image.merge("RGB", (red, Image.new("L", size, BACKGROUND[1]), blue))


def draw(scene: Scene) -> Image.Image:
    image = backdrop(scene.size, scene.shaded)
    pen = ImageDraw.Draw(image)
    for obj in scene.objects:
        x1, y1, x2, y2 = obj.box
        fill = COLORS[obj.color]
        if obj.pattern:  # lines 2 px thick, FINE_PERIOD px apart
            for k in range(0, (x2 - x1) if obj.pattern == "vertical" else (y2 - y1), FINE_PERIOD):
                if obj.pattern == "vertical":
                    pen.rectangle((x1 + k, y1, min(x1 + k + 1, x2 - 1), y2 - 1), fill=fill)
                else:
                    pen.rectangle((x1, y1 + k, x2 - 1, min(y1 + k + 1, y2 - 1)), fill=fill)
        elif obj.shape in ("circle", "ellipse"):
            pen.ellipse((x1, y1, x2 - 1, y2 - 1), fill=fill)
        elif obj.shape in ("square", "rectangle"):
            pen.rectangle((x1, y1, x2 - 1, y2 - 1), fill=fill)
        else:
            pen.polygon([((x1 + x2) / 2, y1), (x2, y2 - 1), (x1, y2 - 1)], fill=fill)
    if scene.word:
        font = _font()
        left, top, _, _ = font.getbbox(scene.word)
        pen.text((scene.word_box[0] - left, scene.word_box[1] - top), scene.word, fill=(20, 20, 20), font=font)
    return image


def _central_square(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The part of a canvas a centre crop keeps: x1, y1, x2, y2."""
    w, h = size
    side = min(w, h)
    return (w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side


def _shape_scene(rng: random.Random, color: str) -> Scene:
    """SHAPE_GRID x SHAPE_GRID copies of one shape on a grid laid out in canvas-relative units, the
    same for every canvas. Round shapes are SHAPE_SIDE x the canvas' short side across; an elongated
    one lies along the long side of a non-square canvas and either way on a square one, so that
    warped to a square the pictures of the round and the elongated shape are the same (module
    docstring). The middle row and column stay whole under a centre crop."""
    w, h = rng.choice(SHAPE_CANVASES)
    shape = rng.choice(PLANTED_SHAPES)
    short = min(w, h) * rng.uniform(*SHAPE_SIDE)
    if shape in ("ellipse", "rectangle"):
        if w == h:
            bw, bh = (short, short / ELONGATION) if rng.random() < 0.5 else (short / ELONGATION, short)
        else:
            bw, bh = (short * ELONGATION, short) if w > h else (short, short * ELONGATION)
    else:
        bw = bh = short
    bw, bh = round(bw), round(bh)
    n, objects = SHAPE_GRID, []
    for i in range(n):
        for j in range(n):
            # jittered about the cell's centre: a fixed layout would let rounding tell canvases apart
            cx = ((i + 0.5) / n + rng.uniform(-SHAPE_JITTER, SHAPE_JITTER)) * w
            cy = ((j + 0.5) / n + rng.uniform(-SHAPE_JITTER, SHAPE_JITTER)) * h
            x = min(max(round(cx - bw / 2), 0), w - bw)
            y = min(max(round(cy - bh / 2), 0), h - bh)
            objects.append(Obj(color, shape, (x, y, x + bw, y + bh)))
    return Scene((w, h), tuple(objects))


def planted_scene(task: str, rng: random.Random) -> Scene:
    """A scene of a family of OWN_SCENES: for a planted one (module docstring), objects placed and
    sized so that the answer to its question survives some image axes' options and not others."""
    color = rng.choice(list(COLORS))
    if task == "spatial":  # one object, its centre in the outer 40 % of the canvas one way or both
        w, h = rng.choice(CANVASES)
        side = int(min(w, h) * rng.uniform(*OBJECT_SIDE))
        while True:
            x, y = rng.randint(0, w - side), rng.randint(0, h - side)
            if abs((x + side / 2) / w - 0.5) > 0.1 or abs((y + side / 2) / h - 0.5) > 0.1:
                return Scene((w, h), (Obj(color, rng.choice(SHAPES), (x, y, x + side, y + side)),), shaded=True)
    if task == "shape":
        return _shape_scene(rng, color)
    if task == "margin":
        w, h = rng.choice(MARGIN_CANVASES)
        side = round(min(w, h) * rng.uniform(*MARGIN_SIDE))
        band = (max(w, h) - min(w, h)) // 2  # what a centre crop cuts away, on each side
        along = rng.randint(0, band - MARGIN_GAP - side)
        along = along if rng.random() < 0.5 else max(w, h) - along - side  # either margin
        across = rng.randint(0, min(w, h) - side)
        x, y = (along, across) if w > h else (across, along)
        return Scene((w, h), (Obj(color, rng.choice(SHAPES), (x, y, x + side, y + side)),))
    if task == "fine":
        w, h = SQUARE
        side = round(w * rng.uniform(*FINE_SIDE))
        x, y = rng.randint(0, w - side), rng.randint(0, h - side)
        return Scene((w, h), (Obj(color, "square", (x, y, x + side, y + side),
                                  rng.choice(("horizontal", "vertical"))),))
    raise ValueError(f"no scenes of their own for {task!r}; families that have them: {', '.join(OWN_SCENES)}")


def _norm_box(scene: Scene, box) -> list[float]:
    w, h = scene.size
    return [round(box[0] / w, 2), round(box[1] / h, 2), round(box[2] / w, 2), round(box[3] / h, 2)]


def box_text(box: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in box) + "]"


def _short_name(obj: Obj, objs: tuple[Obj, ...]) -> str:
    """"red shape" where no other object is red (colour is what a tiny model sees best), else
    "red circle"."""
    return f"{obj.color} shape" if sum(o.color == obj.color for o in objs) == 1 else obj.name


def _side(scene: Scene, obj: Obj, rng: random.Random) -> tuple[str, str] | None:
    """The side of the image `obj` clearly lies on (its centre in the outer 40 % of the canvas on one
    axis), and the opposite side; None for an object near the middle both ways."""
    (x, y), (w, h) = obj.center, scene.size
    options = []
    if abs(x / w - 0.5) > 0.1:
        options.append(("left", "right") if x < w / 2 else ("right", "left"))
    if abs(y / h - 0.5) > 0.1:
        options.append(("top", "bottom") if y < h / 2 else ("bottom", "top"))
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
    if task == "count":  # every object of the scene: 1..max_objects
        return {"question": "How many shapes are there?" + SHORT_ANSWER, "answer": str(len(objs)),
                "choices": [str(i) for i in range(MAX_COUNT + 1)]}
    if task == "spatial":  # which side of the image one object lies on, clear of the middle
        obj = rng.choice(objs)
        side = _side(scene, obj, rng)
        if side is None:
            return None
        pair = sorted(side, key=("left", "right", "top", "bottom").index)
        return {"question": f"Is the {_short_name(obj, objs)} on the {pair[0]} or the {pair[1]} of the image?",
                "answer": side[0], "choices": pair}
    if task == "shape":  # the pair is named: what decides is the aspect ratio alone
        shape = objs[0].shape
        pair = next((r, e) for r, e in SHAPE_PAIRS.items() if shape in (r, e))
        return {"question": f"Is each shape a {pair[0]} or a{'n' if pair[1][0] in 'aeiou' else ''} {pair[1]}?",
                "answer": shape, "choices": list(pair)}
    if task == "margin":
        return {"question": "What color is the small shape at the edge of the image?", "answer": objs[0].color,
                "choices": list(COLORS)}
    if task == "fine":
        return {"question": "Are the thin stripes horizontal or vertical?", "answer": objs[0].pattern,
                "choices": ["horizontal", "vertical"]}
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
        return {"question": REF_PROMPT + f"the {_short_name(obj, objs)}.", "answer": box_text(box), "box": box}
    if task == "text":
        return {"question": "What word is written in the image?" + SHORT_ANSWER, "answer": scene.word,
                "alternatives": [w for w in WORDS if w != scene.word]}
    raise ValueError(f"unknown synthetic task {task!r}; known: {', '.join(TASKS + OWN_SCENES)}")


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
        turns = _one_turn(task_example("text", scene, rng))
    return {"id": f"ft{i}", "image": writer.image(f"ft{i}", scene), "conversations": turns}


def _one_turn(example: dict) -> list[dict]:
    """The conversation of one question about the record's image."""
    return [{"from": "human", "value": "<image>\n" + example["question"]}, {"from": "gpt", "value": example["answer"]}]


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
    # Each record is language-only, of a family of OWN_SCENES (one question about a scene of its own) or
    # a general scene with several turns; the first two by their weight against the total of all weights
    # (text_only 1 of 16 by default), the turns of a general record by the general families' weights.
    kinds = ["text_only", *OWN_SCENES, "general"]
    weights = [float(tasks.get(k, 0)) for k in kinds[:-1]] + [sum(float(tasks.get(t, 0)) for t in TASKS)]
    for i in range(conf.n_finetune):
        kind = rng.choices(kinds, weights)[0]
        if kind == "text_only":
            finetune.append({"id": f"lo{i}", "conversations": language_only(rng)})
        elif kind == "general":
            finetune.append(_finetune_record(i, make_scene(rng, conf.max_objects), writer, rng, tasks,
                                             tuple(conf.turns)))
        else:
            scene = planted_scene(kind, rng)
            finetune.append({"id": f"ft{i}", "image": writer.image(f"ft{i}", scene),
                             "conversations": _one_turn(task_example(kind, scene, rng))})
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
            scene = planted_scene(task, eval_rng) if task in OWN_SCENES else make_scene(eval_rng, conf.max_objects)
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
    """The world's folder for `conf`, generated on first use (atomic: built aside, then renamed).
    Half-built worlds of killed builders are removed first; those of live builders are kept."""
    target = Path(cache_dir) / "synthetic" / world_key(conf)
    atomic.remove_stale(target.parent)
    if (target / "corpus.txt").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_dir(target.parent, f"tmp-world-{target.name}")
    try:
        generate(tmp, conf)
        os.rename(tmp, target)
    except OSError:
        if not (target / "corpus.txt").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
