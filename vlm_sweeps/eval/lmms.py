"""A finished run as an lmms-eval model (the `lmms` extra), registered through lmms-eval's
`lmms_eval.models` entry point as `vlm_sweeps`:

    python -m lmms_eval --model vlm_sweeps --model_args run_id=RUN,tracking_uri=URI --tasks mme,pope

Other `--model_args` keys with a dot are overrides of `python -m vlm_sweeps.evaluate`
(`paths.root=DIR`, `eval.blind=true`, `eval.checkpoint=PATH`); `max_new_tokens` is the generation
budget of tasks that set none. The model is loaded by `vlm_sweeps.evaluate.load_model`, the same
code that re-evaluates a run on our own suite, and answers through `eval.harness.Answerer`:

- generate_until: batched greedy decoding, stopped at EOS or the task's `max_new_tokens`, the text
  cut at the first of the task's `until` strings. Greedy only: sampling settings are ignored.
- loglikelihood: the continuation's loss after the context, -sum(log p) over its tokens (both in
  the model's prompt format, the continuation scored as the answer turn), and whether greedy
  decoding would produce it; all requests of a batch in one forward pass. A loss, not a
  log-probability, because that is what lmms-eval's tasks read: its multiple_choice scoring takes
  the argmin over the candidates and its own models return their loss (lmms-eval 0.7.3,
  api/task.py). Summed, so `acc` picks the candidate our closed-set harness (and Prismatic's) picks:
  the highest summed log-probability. See `_response` for how the pair is returned.

A context is the user turn (any `<image>` marker is dropped: the image patches always follow BOS);
each document's first image is used. `evaluate` runs tasks in-process and returns metrics named
`lmms/<task>/<metric>` (the filter appended as `<metric>_<filter>` unless it is `none`).
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from lmms_eval.api.model import lmms
from tqdm import tqdm

log = logging.getLogger(__name__)
MODEL_NAME = "vlm_sweeps"
METRIC_PREFIX = "lmms"
DEFAULT_MAX_NEW_TOKENS = 128  # for tasks whose generation_kwargs set no budget
_UNSAFE = re.compile(r"[^\w\-. /:]")  # characters an MLflow metric name may not hold


def manifest():
    """The payload of the `lmms_eval.models` entry point (imported while lmms-eval starts up)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_NAME, simple_class_path=f"{__name__}.VlmSweepsModel")


@dataclass
class _Request:
    context: str
    image: Any  # a PIL image, an image file's path, or None
    image_id: tuple  # (task, split, doc_id): requests of one document share its image


class VlmSweepsModel(lmms):
    """lmms-eval's simple-model interface over an `Answerer` (one process)."""

    is_simple = True

    def __init__(self, run_id: str | None = None, tracking_uri: str | None = None, checkpoint: str | None = None,
                 batch_size: int | str | None = None, max_batch_size: int | None = None, device: str | None = None,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, answerer=None, **overrides: Any) -> None:
        super().__init__()
        if answerer is None:
            answerer, default_batch = _load(run_id, tracking_uri, checkpoint, device, overrides)
        else:
            default_batch = 1
        self.answerer = answerer
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else default_batch  # None / "auto"
        self.max_new_tokens = int(max_new_tokens)
        self._warned: set[str] = set()

    @property
    def device(self) -> torch.device:
        return self.answerer.device

    # --- lmms-eval's interface ------------------------------------------------------------------

    def generate_until(self, requests) -> list[str]:
        out: list[str | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        parsed = []
        for i, instance in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = instance.args
            parsed.append(self._request(context, doc_to_visual, task, split, doc_id))
            until, budget = self._generation_settings(gen_kwargs)
            groups.setdefault((parsed[-1].image is None, until, budget), []).append(i)
        bar = tqdm(total=len(requests), desc="vlm_sweeps generate_until", disable=self.rank != 0)
        for (_, until, budget), indices in groups.items():
            indices.sort(key=lambda i: -len(parsed[i].context))  # like lengths together: less padding
            for b in range(0, len(indices), self.batch_size):
                chunk = indices[b:b + self.batch_size]
                with tempfile.TemporaryDirectory() as tmp:
                    texts = self.answerer.generate(_examples([parsed[i] for i in chunk], tmp), budget)
                for i, text in zip(chunk, texts):
                    out[i] = _cut(text, until)
                bar.update(len(chunk))
        bar.close()
        return out  # type: ignore[return-value]

    def loglikelihood(self, requests) -> list:
        out: list = [None] * len(requests)
        items: list[tuple[_Request, str]] = []
        for instance in requests:
            if len(instance.args) == 2:  # acc_mutual_info's unconditional request: (context, continuation)
                context, continuation = instance.args
                request = _Request(context, None, ())
            else:
                context, target, doc_to_visual, doc_id, task, split = instance.args
                request = self._request(context, doc_to_visual, task, split, doc_id)
                continuation = target if isinstance(target, str) else target(self.task_dict[task][split][doc_id])
            items.append((request, continuation if isinstance(continuation, str) else str(continuation)))
        groups: dict[bool, list[int]] = {}
        for i, (request, _) in enumerate(items):
            groups.setdefault(request.image is None, []).append(i)
        bar = tqdm(total=len(requests), desc="vlm_sweeps loglikelihood", disable=self.rank != 0)
        for indices in groups.values():
            # like lengths together (less padding), a document's candidates side by side (one image encoding)
            indices.sort(key=lambda i: (-len(items[i][0].context), items[i][0].image_id))
            for b in range(0, len(indices), self.batch_size):
                chunk = indices[b:b + self.batch_size]
                for i, score in zip(chunk, self._score([items[i] for i in chunk])):
                    out[i] = _response(score)
                bar.update(len(chunk))
        bar.close()
        return out  # type: ignore[return-value]

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("vlm_sweeps models answer single-turn questions (no multi-round tasks)")

    # --- helpers --------------------------------------------------------------------------------

    def _request(self, context: str, doc_to_visual, task: str, split: str, doc_id: int) -> _Request:
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual is not None else None
        visuals = [v for v in _flatten(visuals) if v is not None]
        if len(visuals) > 1:
            self._warn_once(f"images:{task}", f"task {task}: documents with {len(visuals)} images; a vlm_sweeps "
                                              "model sees one, the first")
        image = visuals[0] if visuals else None
        if image is not None and not isinstance(image, str) and not hasattr(image, "convert"):
            raise ValueError(f"task {task}: vlm_sweeps models read images (PIL images or image files), "
                             f"not {type(image).__name__}")
        return _Request(context if isinstance(context, str) else str(context), image, (task, split, doc_id))

    def _generation_settings(self, gen_kwargs: dict | None) -> tuple[tuple[str, ...], int]:
        gen_kwargs = dict(gen_kwargs or {})
        until = gen_kwargs.get("until") or ()
        until = (until,) if isinstance(until, str) else tuple(until)
        if gen_kwargs.get("do_sample") or (gen_kwargs.get("num_beams") or 1) > 1:
            self._warn_once("sampling", "sampling and beam search are not supported: decoding greedily")
        budget = gen_kwargs.get("max_new_tokens") or self.max_new_tokens
        return tuple(u for u in until if u), int(budget)

    @torch.no_grad()
    def _score(self, items: Sequence[tuple[_Request, str]]) -> list[tuple[float, bool]]:
        """(-log P(continuation | context), is greedy) of each item, one forward pass for the batch."""
        from vlm_sweeps.eval.examples import EvalExample
        from vlm_sweeps.models.prompts import question_prompt

        a = self.answerer
        model = a.model
        slots: dict[tuple, int] = {}  # the choices of one document share one encoding of its image
        owner = [slots.setdefault(r.image_id or ("item", n), len(slots)) for n, (r, _) in enumerate(items)]
        unique = list({o: r for o, (r, _) in zip(owner, items)}.values())
        with tempfile.TemporaryDirectory() as tmp, a._autocast():
            image_embeds = a._image_embeds(_examples(unique, tmp))
            rows, spans = [], []
            for request, continuation in items:
                prompt = a._prompt_ids(EvalExample(qid="", question=request.context, image=None))
                if question_prompt(a.fmt, request.context)[-1:].isspace():
                    # the format's answer turn starts after its own separator: " yes" is scored as "yes"
                    continuation = continuation.lstrip()
                cont = a.tokenizer(continuation, add_special_tokens=False)["input_ids"] if continuation else []
                rows.append(torch.tensor(prompt + cont, device=a.device))
                spans.append((len(prompt), len(cont)))
            repeated = image_embeds[torch.tensor(owner, device=a.device)] if image_embeds is not None else None
            embeds, mask, pos, _ = model.build_inputs(repeated, rows, padding_side="right")
            logits = model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=False).logits
        offset = model.num_patches if image_embeds is not None else 0
        scores = []
        for r, (start, length) in enumerate(spans):
            if length == 0:
                scores.append((0.0, True))
                continue
            # token t of the continuation sits at position offset+start+t and is predicted at the one before
            positions = torch.arange(start, start + length, device=a.device) + offset - 1
            targets = rows[r][start:start + length]
            logprobs = logits[r, positions].float().log_softmax(-1)  # [length, V]
            scores.append((-logprobs.gather(-1, targets[:, None]).sum().item(),
                           bool((logprobs.argmax(-1) == targets).all())))
        return scores

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)


def _load(run_id, tracking_uri, checkpoint, device, overrides: dict[str, Any]):
    """(Answerer, default batch size) of the run named by lmms-eval's model_args."""
    from vlm_sweeps.evaluate import compose_invocation, load_model

    if run_id is None and checkpoint is None:
        raise ValueError("say which run to evaluate: --model_args run_id=<MLflow run id>,tracking_uri=<store>")
    bad = sorted(k for k in overrides if "." not in k)
    if bad:
        raise ValueError(f"unknown model_args {', '.join(bad)} for --model {MODEL_NAME}: known are run_id, "
                         "tracking_uri, checkpoint, max_new_tokens and overrides of python -m vlm_sweeps.evaluate "
                         "such as paths.root=DIR or eval.blind=true")
    args = [f"eval.run_id={run_id}"] if run_id is not None else []
    args += [f"tracking.uri={tracking_uri}"] if tracking_uri is not None else []
    args += [f"eval.checkpoint={checkpoint}"] if checkpoint is not None else []
    if device is not None:  # lmms-eval's cuda:0 / cuda / cpu; the run picks the GPU itself
        args.append(f"run.device={'cuda' if str(device).startswith('cuda') else 'cpu'}")
    args += [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in overrides.items()]
    invocation = compose_invocation(args)
    loaded = load_model(invocation, feature_cache=False)  # lmms-eval's images: no cache to fill on disk
    log.info("lmms-eval model: run %s, checkpoint %s", loaded.target.run_id, loaded.target.checkpoint)
    return loaded.answerer, int(invocation.benchmarks.batch_size)


def _flatten(visuals) -> list:
    if visuals is None:
        return []
    if isinstance(visuals, (list, tuple)):
        return [v for item in visuals for v in _flatten(item)]
    return [visuals]


def _examples(requests: Sequence[_Request], tmp: str):
    """EvalExamples of the requests; in-memory images are written (losslessly) to `tmp` for the
    Answerer, which reads image files."""
    from vlm_sweeps.eval.examples import EvalExample

    examples = []
    for n, request in enumerate(requests):
        image = request.image
        if image is not None and not isinstance(image, str):
            path = Path(tmp) / f"{n}.bmp"
            image.convert("RGB").save(path, format="BMP")
            image = str(path)
        examples.append(EvalExample(qid=str(n), question=request.context, image=image))
    return examples


def _response(score: tuple[float, bool]):
    """A (loss, is greedy) pair as lmms-eval's evaluator reads it back. lmms-eval 0.7 passes
    every response through `unwrap_generation_output`, which turns such a tuple into its string (an
    upstream bug from v0.7 on, for every model's loglikelihood): as a `GenerationResult`'s text the
    tuple comes through unchanged."""
    from lmms_eval.api import instance

    unwrap = getattr(instance, "unwrap_generation_output", None)
    if unwrap is None or unwrap(score)[0] == score:
        return score
    return instance.GenerationResult(text=score)  # type: ignore[arg-type]


def _cut(text: str, until: Sequence[str]) -> str:
    """The text up to the first of the stop strings."""
    for stop in until:
        text = text.split(stop, 1)[0]
    return text


# --- in-process evaluation (python -m vlm_sweeps.evaluate eval.harness=lmms_eval) ---------------


@dataclass
class LmmsResult:
    metrics: dict[str, float]  # lmms/<task>/<metric>
    predictions: dict[str, list[dict]]  # lmms/<task> -> one row per document
    raw: dict  # what lmms-eval's simple_evaluate returned


def task_manager(tasks: Sequence[str], include_path: str | None = None):
    """lmms-eval's task index (with the task YAMLs under `include_path`); ValueError naming the
    unknown tasks."""
    from lmms_eval.tasks import TaskManager

    if include_path is not None and not Path(include_path).expanduser().exists():
        raise ValueError(f"eval.include_path={include_path} does not exist")
    include = str(Path(include_path).expanduser().resolve()) if include_path is not None else None
    manager = TaskManager("WARNING", include_path=include, model_name=MODEL_NAME)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        where = f" or under {include_path}" if include_path else " (eval.include_path=DIR adds task YAMLs of your own)"
        raise ValueError(f"unknown lmms-eval task(s) {', '.join(unknown)}: not among lmms-eval's tasks{where}; "
                         "python -m lmms_eval tasks list names them")
    return manager


def evaluate(answerer, tasks: Sequence[str], manager, batch_size: int, limit: int | None = None) -> LmmsResult:
    """Run lmms-eval's tasks on the answerer's model, in this process."""
    from lmms_eval import evaluator

    model = VlmSweepsModel(answerer=answerer, batch_size=batch_size)
    raw = evaluator.simple_evaluate(model=model, tasks=list(tasks), task_manager=manager, batch_size=batch_size,
                                    limit=limit, log_samples=True)
    return LmmsResult(metric_names(raw), _predictions(raw), raw)


def metric_names(raw: dict) -> dict[str, float]:
    """lmms-eval's results ({task: {"exact_match,none": 0.5, ...}}) as `lmms/<task>/<metric>`."""
    metrics: dict[str, float] = {}
    for section in ("results", "groups"):
        for task, values in (raw.get(section) or {}).items():
            for key, value in values.items():
                if "," not in key or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue  # alias, sample counts, "N/A" stderrs
                metric, filt = key.split(",", 1)
                name = metric if filt == "none" else f"{metric}_{filt}"
                if math.isfinite(value):
                    metrics[_UNSAFE.sub("_", f"{METRIC_PREFIX}/{task}/{name}")] = float(value)
    return metrics


def _predictions(raw: dict) -> dict[str, list[dict]]:
    """One JSON-safe row per document: its id, question, target, the model's (filtered) answer (the
    generated text; for candidates, one [loss, is greedy] pair each) and its scores."""
    out = {}
    for task, samples in (raw.get("samples") or {}).items():
        metrics = (raw.get("higher_is_better") or {}).get(task, {})
        rows = []
        for sample in samples:
            answers = sample.get("filtered_resps") or []
            arguments = sample.get("arguments") or [None]
            row = {"doc_id": sample.get("doc_id"), "input": arguments[0], "target": sample.get("target"),
                   "prediction": answers[0] if len(answers) == 1 else answers}
            row.update({k: sample[k] for k in metrics if k in sample})
            rows.append(json.loads(json.dumps(row, default=str)))
        out[_UNSAFE.sub("_", f"{METRIC_PREFIX}/{task}")] = rows
    return out
