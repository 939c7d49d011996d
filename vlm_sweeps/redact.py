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
# scheme://userinfo@ : userinfo is everything up to the last '@' before the authority ends (at the
# first '/', '?' or '#': `http://host/?mail=a@b` has no userinfo); any '://' counts, also after
# something that is not a scheme (a miss would be a leak)
_USERINFO = re.compile(r"(?P<scheme>(?:\b[A-Za-z][A-Za-z0-9+.\-]*)?://)(?P<userinfo>[^\s/?#'\"]+)@")
# query parameters named like a secret, also with a prefix (`access_token`, `X-Amz-Signature`,
# `aws_secret_access_key`, `X-Amz-Credential`), but not `monkey` or `keyboard`
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;](?:[\w.\-]*[_\-.])?(?:password|passwd|pwd|token|secret|key|apikey|sig|signature"
    r"|credential|credentials|sas)=)(?P<value>[^&#\s'\"]*)", re.IGNORECASE)


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
        # a traceback is formatted later, by the handler's formatter, from exc_info unless exc_text
        # is set: an exception's message may hold the URI (MLflow: "API request to http://u:pw@...")
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


_FILTER = RedactFilter()
_HYDRA_LAUNCHER_LOGGER = "hydra._internal.core_plugins.basic_launcher"


def install_log_filter() -> None:
    """Attach the filter to every handler of the root logger (idempotent): whatever the job and
    its libraries log reaches the console and Hydra's job log without credentials."""
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def install_warning_redaction() -> None:
    """Warnings printed redacted (idempotent). Hydra reports a callback that raised as a warning
    with the exception's message, e.g. MLflow's "API request to http://alice:pw@host/... failed"."""
    import warnings

    shown = warnings.showwarning
    if getattr(shown, "redacts", False):
        return

    def showwarning(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                    line: str | None = None) -> None:
        shown(redact_text(str(message)), category, filename, lineno, file, line)

    showwarning.redacts = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


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
    `multirun.yaml`) and sets up the job's log file before `on_job_start` (hydra/core/utils.py
    run_job); this rewrites them redacted, and redacts the logs and printed warnings. Listed first
    in `hydra.callbacks`, so that the filter is in place when the other callbacks log."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        install_log_filter()
        hydra = config.hydra
        if hydra.output_subdir is not None:
            folder = Path(hydra.runtime.output_dir) / str(hydra.output_subdir)
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                redact_file(folder / name)
        if hydra.mode is not None and str(hydra.mode).endswith("MULTIRUN"):
            redact_file(Path(hydra.sweep.dir) / "multirun.yaml")

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        install_warning_redaction()

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        install_log_filter()
        install_warning_redaction()
        # Hydra's basic launcher logs each job's overrides (tracking.uri=... among them) after it
        # reconfigured logging (new handlers, without the filter): a filter on its own logger stays
        launcher_log = logging.getLogger(_HYDRA_LAUNCHER_LOGGER)
        if _FILTER not in launcher_log.filters:
            launcher_log.addFilter(_FILTER)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        # the sweeper writes multirun.yaml before it launches: a launcher that starts no job in
        # this process (hydra/launcher=slurm) never gets to on_job_start
        redact_file(Path(config.hydra.sweep.dir) / "multirun.yaml")


URI_ENV = "VLM_SWEEPS_TRACKING_URI"  # the real tracking URI of a job whose frozen config holds it redacted


def restore_uri(uri: str, environ: Any = None, names: tuple[str, ...] = (URI_ENV, "MLFLOW_TRACKING_URI")) -> str:
    """The real URI of a redacted one, from the first variable of `names` in the environment whose
    redaction matches; a URI without redaction is returned as is. Raises ValueError saying what to
    export when no variable holds it."""
    import os

    environ = os.environ if environ is None else environ
    if MASK not in uri:
        return uri
    for name in names:
        value = environ.get(name)
        if value and redact_uri(value) == uri:
            return value
    found = [f"{name}={redact_uri(environ[name])}" for name in names if environ.get(name)]
    other = f" ({', '.join(found)} is another store)" if found else ""
    variables = " or ".join(names)
    raise ValueError(f"the tracking URI {uri} was recorded without its credentials{other}; export {variables} "
                     "with the full URI (credentials included) in the environment of this command")
