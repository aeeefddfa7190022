"""Experiment-tracker export (``tracking=mlflow`` / ``tracking=tensorboard``) through Ray Tune's
own logger callbacks: ``ray.air.integrations.mlflow.MLflowLoggerCallback`` (one MLflow run per
trial: its config as params, every reported epoch as metrics) and
``ray.tune.logger.TBXLoggerCallback`` (event files in each trial's directory). They run in the
driver beside the database writer; the database stays the record.

This module is the design layer's half (torch- and Ray-free): the kinds, ``check_tracking`` at
config time (a missing extra is one line, exit 2) and the viewer line; the runner's
``search.tracking.tracking_callbacks`` builds Ray's callbacks when the run starts.
"""

from __future__ import annotations

import importlib.util
from typing import Any

# kind -> (module the callback needs, the pyproject extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {"mlflow": ("mlflow", "mlflow"),
                                      "tensorboard": ("tensorboardX", "tensorboard")}
KINDS: tuple[str, ...] = ("none", *EXTRAS)


class TrackingError(ValueError):
    """A tracking setting that cannot work; the message is one line naming the key."""


def check_tracking(cfg: Any) -> None:
    """Raise ``TrackingError`` for an unknown kind, a missing extra, or a URI it cannot use."""
    kind = cfg.tracking.kind
    if kind not in KINDS:
        raise TrackingError(f"tracking.kind: unknown {kind!r} (choose from {', '.join(KINDS)})")
    if kind in EXTRAS:
        module, extra = EXTRAS[kind]
        if not _installed(module):
            raise TrackingError(f"tracking: {kind} needs the {module} package: "
                                f"pip install 'vidarch[{extra}]'")
    if cfg.tracking_uri and kind != "mlflow":
        raise TrackingError(f"tracking_uri: only used by tracking=mlflow (tracking={kind}"
                            + (" writes into hardware.checkpoint_dir)" if kind == "tensorboard"
                               else ")"))


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (found, and not blocked by a ``None`` entry in
    ``sys.modules``), without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: sys.modules[module] is None (blocked)
        return False


def is_file_uri(uri: str | None) -> bool:
    """Whether an MLflow tracking URI is a local file store (``file:///...`` or a path)."""
    return uri is not None and uri != "" and (uri.startswith("file:") or "://" not in uri)


def viewer_line(cfg: Any) -> str | None:
    """The command that shows what was exported (one line), or None without tracking."""
    kind = cfg.tracking.kind
    if kind == "mlflow":
        uri = cfg.tracking_uri
        return (f"MLflow: mlflow ui --backend-store-uri {uri}" if uri else
                "MLflow: mlflow ui (the default tracking URI)")
    if kind == "tensorboard":
        return f"TensorBoard: tensorboard --logdir {cfg.hardware.checkpoint_dir}"
    return None
