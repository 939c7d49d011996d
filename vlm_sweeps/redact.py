"""Credentials out of everything a job writes or prints: tracking URIs such as
`http://alice:SECRET@host:5000` or `postgresql://user:pw@db/x`, and secret query parameters
(`?token=...`). The store (params, the config.yaml artifact), Hydra's output files, log lines and the
SLURM launcher's frozen configs get `http://***@host:5000`; the real URI stays in memory and in
the environment of the processes that need it."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

MASK = "***"
# scheme://userinfo@ : userinfo is everything up to the last '@' before the host part
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/'\"]+)@")
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|token|access_token|auth_token|secret|client_secret|key|api_key|apikey"
    r"|sig|signature|credential|credentials|sas)=)(?P<value>[^&#\s'\"]*)", re.IGNORECASE)


def redact_text(text: str) -> str:
    """`text` with the userinfo of every URI in it, and the values of secret query parameters,
    replaced by ***."""
    if not isinstance(text, str) or ("@" not in text and "=" not in text):
        return text
    text = _USERINFO.sub(lambda m: m["scheme"] + (MASK if m["userinfo"] != MASK else MASK) + "@", text)
    return _SECRET_PARAM.sub(lambda m: m["key"] + (MASK if m["value"] else ""), text)


def redact_uri(uri: str | None) -> str | None:
    """A URI without its credentials: `http://alice:pw@host:5000` -> `http://***@host:5000`."""
    return None if uri is None else redact_text(str(uri))


def is_redacted(uri: str | None) -> bool:
    return uri is not None and redact_uri(uri) == uri and MASK in uri


def redact_tree(tree: Any) -> Any:
    """A copy of a nested dict/list/tuple with every string redacted."""
    if isinstance(tree, dict):
        return {k: redact_tree(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(redact_tree(v) for v in tree)
    return redact_text(tree) if isinstance(tree, str) else tree


class RedactFilter(logging.Filter):
    """Redacts a log record's message (its arguments formatted first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactFilter()


def install_log_filter() -> None:
    """Attach the filter to every handler of the root logger (idempotent): whatever the job and
    its libraries log reaches the console and Hydra's job log without credentials."""
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def redact_file(path: Path) -> None:
    """Rewrite a text file redacted, in place (atomically), when it holds a credential."""
    from vlm_sweeps.atomic import atomic_write_text

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return
    clean = redact_text(text)
    if clean != text:
        atomic_write_text(path, clean)


class RedactHydraOutputs(Callback):
    """Hydra callback: Hydra writes the job's composed config, its own config and the overrides
    (`.hydra/config.yaml`, `hydra.yaml`, `overrides.yaml`; in a multirun also the sweep's
    `multirun.yaml`) before the job starts; this rewrites them redacted, and redacts the logs."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        install_log_filter()
        hydra = config.hydra
        if hydra.output_subdir is not None:
            folder = Path(hydra.runtime.output_dir) / str(hydra.output_subdir)
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                redact_file(folder / name)
        if hydra.mode is not None and str(hydra.mode).endswith("MULTIRUN"):
            redact_file(Path(hydra.sweep.dir) / "multirun.yaml")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        install_log_filter()


URI_ENV = "VLM_SWEEPS_TRACKING_URI"  # the real tracking URI of a job whose frozen config holds it redacted


def restore_uri(uri: str, environ: Any = None) -> str:
    """The real URI of a redacted one, from the environment (`VLM_SWEEPS_TRACKING_URI`, then
    `MLFLOW_TRACKING_URI`) where its redaction matches; a URI without redaction is returned as
    is. Raises ValueError saying what to export when no variable holds it."""
    import os

    environ = os.environ if environ is None else environ
    if MASK not in uri:
        return uri
    for name in (URI_ENV, "MLFLOW_TRACKING_URI"):
        value = environ.get(name)
        if value and redact_uri(value) == uri:
            return value
    raise ValueError(f"the tracking URI {uri} was recorded without its credentials; export {URI_ENV} (or "
                     "MLFLOW_TRACKING_URI) with the full URI in the environment of this command")
