"""Where pretrained weights come from at `scale=full`, without the network.

Every part the paper uses is one Hugging Face Hub repository: the config's id for transformers
models (CLIP, SigLIP, the LLMs), `timm/<name>` for timm models (DINOv2, the ImageNet ViT). A part
resolves to a local folder holding a complete copy, searched in this order:

1. `<models_dir>/<repo>`: what `hf download <repo> --local-dir <models_dir>/<repo>` writes;
2. `<models_dir>/models--<org>--<name>/snapshots/<rev>`: a Hugging Face cache kept in models_dir;
3. the standard Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
   `~/.cache/huggingface/hub`): where `hf download <repo>` and ordinary transformers/timm
   downloads land.

`models_dir` is `paths.models_dir`, else `$VLM_SWEEPS_MODELS_DIR`, else unset (3 only).
Nothing is ever downloaded during a job: the jobs of a sweep would race to fetch the same tens of
gigabytes on every node, and a cluster node usually has no network. `missing(cfg)` lists what is
absent before anything loads, and the error says how to fetch each id once.
Folders are passed to the libraries as local paths (`local_files_only=True`), so loading behaves the
same with or without `HF_HUB_OFFLINE`. Weights are read with safe loaders only: safetensors, or
`torch.load(weights_only=True)` for `.bin` files (what transformers and timm use for them).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_MODELS_DIR = "VLM_SWEEPS_MODELS_DIR"
# Model ids whose repository is gated on the Hub: the download needs an accepted licence + token.
GATED_PREFIXES = ("meta-llama/",)
_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
               "pytorch_model.bin.index.json")
_TIMM_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights that are not on this machine; the message says how to fetch them."""


@dataclass(frozen=True)
class WeightSpec:
    """One pretrained part a job needs."""

    id: str  # as written in the config: a Hub repo id (transformers) or a timm model name
    library: str  # transformers | timm
    role: str  # what needs it, for messages: "encoder=clip", "llm=llama2"
    needs_tokenizer: bool = False  # LLMs: the folder must hold the tokenizer too

    @property
    def repo(self) -> str:
        """The Hub repository that holds the weights (timm's live under `timm/`)."""
        return f"timm/{self.id}" if self.library == "timm" else self.id


def models_dir_of(cfg_models_dir: str | None) -> Path | None:
    value = cfg_models_dir or os.environ.get(ENV_MODELS_DIR)
    return Path(value).expanduser() if value else None


def hf_cache_dir() -> Path:
    """The standard Hugging Face hub cache, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"


def required(cfg: Any) -> list[WeightSpec]:
    """The pretrained parts of a config: one per backbone, plus the LLM (with its tokenizer)."""
    from vlm_sweeps.models.vision import FAMILIES

    specs = [WeightSpec(b.id, FAMILIES[b.kind].library, f"encoder={cfg.encoder.name}")
             for b in cfg.encoder.backbones if b.kind in FAMILIES]
    specs.append(WeightSpec(cfg.llm.id, "transformers", f"llm={cfg.llm.name}", needs_tokenizer=True))
    unique: dict[str, WeightSpec] = {}
    for s in specs:
        unique.setdefault(s.repo, s)
    return list(unique.values())


def is_complete(folder: Path, spec: WeightSpec) -> bool:
    """A folder with everything `spec` loads: config and every weight shard (and a tokenizer)."""
    if not folder.is_dir():
        return False
    if not (folder / "config.json").is_file():
        return False
    if spec.library == "timm":
        return any((folder / f).is_file() for f in _TIMM_WEIGHTS)
    weights = [folder / f for f in _HF_WEIGHTS if (folder / f).is_file()]
    if not weights:
        return False
    if weights[0].name.endswith(".index.json"):  # sharded: every shard must be there
        try:
            shards = set(json.loads(weights[0].read_text())["weight_map"].values())
        except (ValueError, KeyError):
            return False
        if not all((folder / s).is_file() for s in shards):
            return False
    return not spec.needs_tokenizer or any((folder / f).is_file() for f in _TOKENIZER_FILES)


def _snapshots(cache: Path, repo: str) -> list[Path]:
    """Snapshot folders of `repo` in a Hugging Face cache, the one `main` points at first."""
    base = cache / ("models--" + repo.replace("/", "--"))
    found = []
    ref = base / "refs" / "main"
    if ref.is_file():
        found.append(base / "snapshots" / ref.read_text().strip())
    if (base / "snapshots").is_dir():
        found += sorted((base / "snapshots").iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    return found


def candidates(spec: WeightSpec, models_dir: Path | None) -> list[Path]:
    """Every folder searched for `spec`, in search order."""
    places: list[Path] = []
    if models_dir is not None:
        places.append(models_dir / spec.repo)
        places += _snapshots(models_dir, spec.repo)
    places += _snapshots(hf_cache_dir(), spec.repo)
    return places


def locate(spec: WeightSpec, models_dir: Path | None) -> Path | None:
    return next((p for p in candidates(spec, models_dir) if is_complete(p, spec)), None)


def missing(cfg: Any) -> list[WeightSpec]:
    """The parts of `cfg` with no complete local copy (empty when everything can load)."""
    models_dir = models_dir_of(cfg.paths.models_dir)
    return [s for s in required(cfg) if locate(s, models_dir) is None]


def fetch_command(spec: WeightSpec, models_dir: Path | None) -> str:
    target = f" --local-dir {models_dir / spec.repo}" if models_dir is not None else ""
    return f"hf download {spec.repo}{target}"


def describe_missing(specs: list[WeightSpec], models_dir: Path | None) -> list[str]:
    """One line per missing id: what needs it and the command that fetches it."""
    lines = []
    for s in specs:
        gated = (" (gated: accept its licence on https://huggingface.co/" + s.repo + " and run `hf auth login` first)"
                 if s.repo.startswith(GATED_PREFIXES) else "")
        lines.append(f"missing pretrained weights {s.repo} ({s.role}); fetch once with: "
                     f"`{fetch_command(s, models_dir)}`{gated}")
    where = f"{models_dir} (paths.models_dir / ${ENV_MODELS_DIR}), then " if models_dir is not None else ""
    lines.append(f"searched {where}the Hugging Face cache {hf_cache_dir()}; jobs never download. Set "
                 f"paths.models_dir=DIR (or ${ENV_MODELS_DIR}) to use weights kept elsewhere")
    return lines


def resolve(spec: WeightSpec, models_dir: Path | None) -> Path:
    """The local folder of `spec`, or an error that names the id and how to fetch it."""
    folder = locate(spec, models_dir)
    if folder is None:
        raise MissingWeightsError("\n".join(describe_missing([spec], models_dir)))
    return folder
