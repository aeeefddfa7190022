"""The Tune callbacks of ``tracking=mlflow`` / ``tracking=tensorboard`` (the runner's half of
experiment-tracker export; the kinds and the config-time check are ``search.design.tracking``)."""

from __future__ import annotations

import os
from typing import Any

from search.design.tracking import is_file_uri


def tracking_callbacks(cfg: Any) -> list[Any]:
    """The Tune callbacks of ``cfg.tracking`` (none for ``kind=none``)."""
    kind = cfg.tracking.kind
    if kind == "mlflow":
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        if is_file_uri(cfg.tracking_uri):
            # MLflow 3 refuses its file store unless asked: a file URI given here is that ask.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        return [MLflowLoggerCallback(tracking_uri=cfg.tracking_uri,
                                     experiment_name=cfg.tracking.experiment or cfg.study.name,
                                     tags={"vidarch.study": cfg.study.name})]
    if kind == "tensorboard":
        from ray.tune.logger import TBXLoggerCallback

        return [TBXLoggerCallback()]
    return []
