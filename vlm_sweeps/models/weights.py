"""Where pretrained weights come from at `scale=full`, without the network.

Every part the paper uses is one Hugging Face Hub repository: the config's id for transformers
models (CLIP, SigLIP, the LLMs), `timm/<name>` for timm models (DINOv2, the ImageNet ViT), and for
an open_clip zoo id `ARCH:TAG` the repository its pretrained config names (one weight file in it,
models/open_clip_backbone.py). A part resolves to a local folder holding a complete copy, searched
in this order:

1. `<models_dir>/<repo>`: what `hf download <repo> --local-dir <models_dir>/<repo>` writes;
2. a Hugging Face cache kept in models_dir (`<models_dir>/models--<org>--<name>`);
3. the standard Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
   `~/.cache/huggingface/hub`, as huggingface_hub resolves it): where `hf download <repo>` and
   ordinary transformers/timm/open_clip downloads land.

Caches are read through huggingface_hub (`snapshot_download(local_files_only=True)`, then the other
cached revisions from `scan_cache_dir`), never downloading. The few open_clip zoo entries that are
on no Hub repository (a URL only) are looked up in 1 only, at `<models_dir>/open_clip/<ARCH>/<TAG>`.

`models_dir` is `paths.models_dir`, else `$VLM_SWEEPS_MODELS_DIR`, else unset (3 only).
Nothing is ever downloaded during a job: the jobs of a sweep would race to fetch the same tens of
gigabytes on every node, and a cluster node usually has no network. `missing(cfg)` lists what is
absent before anything loads, and the error says how to fetch each id once.
Folders are passed to the libraries as local paths (`local_files_only=True`), so loading behaves the
same with or without `HF_HUB_OFFLINE`. Weights are read with safe loaders only: safetensors, or
`torch.load(weights_only=True)` for `.bin` files (what transformers, timm and open_clip use for them).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV_MODELS_DIR = "VLM_SWEEPS_MODELS_DIR"
# Model ids whose repository is gated on the Hub: the download needs an accepted licence + token.
GATED_PREFIXES = ("meta-llama/",)
_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
               "pytorch_model.bin.index.json")
_TIMM_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
LIBRARIES = ("transformers", "timm", "open_clip")


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights that are not on this machine; the message says how to fetch them."""


@dataclass(frozen=True)
class WeightSpec:
    """One pretrained part a job needs."""

    id: str  # as written in the config: a Hub repo id (transformers), a timm model name, an open_clip ARCH:TAG
    library: str  # transformers | timm | open_clip
    role: str  # what needs it, for messages: "encoder=clip", "llm=llama2"
    needs_tokenizer: bool = False  # LLMs: the folder must hold the tokenizer too
    # open_clip: the Hub repo its pretrained config names (None: the entry has a download URL only),
    # the weight files any one of which is the checkpoint (open_clip's preference order), and the URL
    hub_repo: str | None = None
    files: tuple[str, ...] = ()
    url: str | None = None

    @property
    def repo(self) -> str:
        """The Hub repository that holds the weights (timm's live under `timm/`); for an open_clip
        entry with no Hub repository, the folder under models_dir its file goes to."""
        if self.library == "timm":
            return f"timm/{self.id}"
        if self.library == "open_clip":
            return self.hub_repo or "open_clip/" + self.id.replace(":", "/")
        return self.id

    @property
    def on_hub(self) -> bool:
        return self.library != "open_clip" or self.hub_repo is not None


def models_dir_of(cfg_models_dir: str | None) -> Path | None:
    value = cfg_models_dir or os.environ.get(ENV_MODELS_DIR)
    return Path(value).expanduser() if value else None


def hf_cache_dir() -> Path:
    """The standard Hugging Face hub cache, by huggingface_hub's own rule (HF_HUB_CACHE, the legacy
    HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub), read from the environment
    now: huggingface_hub reads it once at import, and a job or test may set it later."""
    env = os.environ
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return Path(os.path.expandvars(os.path.expanduser(cache)))


def required(cfg: Any) -> list[WeightSpec]:
    """The pretrained parts of a config: one per backbone (its kind says which, models/vision.py
    KINDS), plus the LLM (with its tokenizer). Unknown kinds are validate.py's to report."""
    from vlm_sweeps.models.vision import KINDS, weight_spec

    specs = [weight_spec(b.kind, b.id, f"encoder={cfg.encoder.name}") for b in cfg.encoder.backbones
             if b.kind in KINDS]
    specs.append(WeightSpec(cfg.llm.id, "transformers", f"llm={cfg.llm.name}", needs_tokenizer=True))
    unique: dict[tuple[str, str], WeightSpec] = {}
    for s in specs:  # one repo may serve two libraries (timm/<name> holds timm and open_clip files)
        unique.setdefault((s.repo, s.library), s)
    return list(unique.values())


def checkpoint_file(folder: Path, spec: WeightSpec) -> Path | None:
    """open_clip: the weight file of `folder` open_clip would load (its preference order)."""
    return next((folder / f for f in spec.files if (folder / f).is_file()), None)


def is_complete(folder: Path, spec: WeightSpec) -> bool:
    """A folder with everything `spec` loads: config and every weight shard (and a tokenizer); for
    open_clip one weight file (the architecture is open_clip's built-in config of ARCH)."""
    if not folder.is_dir():
        return False
    if spec.library == "open_clip":
        return checkpoint_file(folder, spec) is not None
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


def cached_snapshots(repo: str, cache: Path) -> Iterator[Path]:
    """Snapshot folders of `repo` in the Hugging Face cache `cache`, found by huggingface_hub: the
    one `main` points at first, then the other cached revisions, newest first. Never downloads."""
    from huggingface_hub import scan_cache_dir, snapshot_download
    from huggingface_hub.errors import CacheNotFound, LocalEntryNotFoundError

    if not (cache / ("models--" + repo.replace("/", "--"))).is_dir():
        return  # not cached here (checked first: scanning a cache reads every repo in it)
    main = None
    try:
        main = Path(snapshot_download(repo, cache_dir=cache, local_files_only=True))
    except LocalEntryNotFoundError as e:  # no `main` ref, or (IncompleteSnapshotError) files missing
        partial = getattr(e, "snapshot_path", None)  # completeness is ours to judge: a job needs few files
        main = Path(partial) if partial else None
    if main is not None:
        yield main
    try:  # reached only when `main` is absent or incomplete
        repos = [r for r in scan_cache_dir(cache).repos if r.repo_id == repo and r.repo_type == "model"]
    except (CacheNotFound, OSError, ValueError) as e:
        log.debug("could not scan %s: %s", cache, e)
        return
    for r in repos:
        for rev in sorted(r.revisions, key=lambda rev: rev.last_modified, reverse=True):
            if Path(rev.snapshot_path) != main:
                yield Path(rev.snapshot_path)


def _search(spec: WeightSpec, models_dir: Path | None) -> Iterator[Path]:
    if models_dir is not None:
        yield models_dir / spec.repo
    if not spec.on_hub:
        return
    if models_dir is not None:
        yield from cached_snapshots(spec.repo, models_dir)
    yield from cached_snapshots(spec.repo, hf_cache_dir())


def candidates(spec: WeightSpec, models_dir: Path | None) -> list[Path]:
    """Every folder searched for `spec`, in search order."""
    return list(_search(spec, models_dir))


def locate(spec: WeightSpec, models_dir: Path | None) -> Path | None:
    return next((p for p in _search(spec, models_dir) if is_complete(p, spec)), None)


def missing(cfg: Any) -> list[WeightSpec]:
    """The parts of `cfg` with no complete local copy (empty when everything can load)."""
    models_dir = models_dir_of(cfg.paths.models_dir)
    return [s for s in required(cfg) if locate(s, models_dir) is None]


def fetch_command(spec: WeightSpec, models_dir: Path | None) -> str:
    if not spec.on_hub:  # an open_clip entry with a download URL only
        where = models_dir if models_dir is not None else Path("$" + ENV_MODELS_DIR)
        return f"curl -L --create-dirs -o {where / spec.repo / spec.files[0]} {spec.url}"
    target = f" --local-dir {models_dir / spec.repo}" if models_dir is not None else ""
    files = f" {spec.files[0]}" if spec.library == "open_clip" else ""  # one file of the repo, not every format
    return f"hf download {spec.repo}{files}{target}"


def describe_missing(specs: list[WeightSpec], models_dir: Path | None) -> list[str]:
    """One line per missing id: what needs it and the command that fetches it."""
    lines = []
    for s in specs:
        gated = (" (gated: accept its licence on https://huggingface.co/" + s.repo + " and run `hf auth login` first)"
                 if s.repo.startswith(GATED_PREFIXES) else "")
        what = f"open_clip {s.id}, {s.role}" if s.library == "open_clip" else s.role
        if not s.on_hub:
            unset = ("" if models_dir is not None else
                     f" after setting paths.models_dir=DIR (or ${ENV_MODELS_DIR}); it goes to DIR/{s.repo}/{s.files[0]}")
            lines.append(f"missing pretrained weights {s.repo} ({what}): on no Hugging Face Hub repository; "
                         f"download it once from its URL{unset}: `{fetch_command(s, models_dir)}`")
            continue
        alt = (f" (or `{fetch_command(WeightSpec(s.id, s.library, s.role, hub_repo=s.hub_repo, files=s.files[1:]), models_dir)}`"
               f" where the repository has no {s.files[0]})" if s.library == "open_clip" and len(s.files) > 1 else "")
        lines.append(f"missing pretrained weights {s.repo} ({what}); fetch once with: "
                     f"`{fetch_command(s, models_dir)}`{alt}{gated}")
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
