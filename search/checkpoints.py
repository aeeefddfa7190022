"""Trial checkpoints: where a study keeps them, which may be read back, and when they go.

- A study's checkpoints live in its own Tune experiment directories,
  ``<hardware.checkpoint_dir>/<study>-<YYYYmmdd-HHMMSS>/`` (``experiment_name``). A resume point
  read from the database is used only when it lies inside one of them (``inside_study``).
- A checkpoint is read with ``torch.load(weights_only=True)``: tensors and plain containers
  only, never code (``load_train_state``), and it must fit the trial's network; anything else
  is discarded with a one-line reason and the cell trains from scratch.
- Once a trial is finished (COMPLETE or PRUNED: it never resumes), its checkpoints are deleted
  (``remove_checkpoints``) unless ``hardware.keep_checkpoints`` is set.

Torch is imported only by ``load_train_state`` (it runs in the trial's worker).
"""

from __future__ import annotations

import os
import posixpath
import re
import time
from pathlib import Path
from typing import Any

RESUME_NOTE = "resume_note"  # result key / resources_json key: why a checkpoint was not used
_STAMP = r"-\d{8}-\d{6}"  # the time stamp experiment_name appends
_TRAIN_STATE_KEYS = ("model", "optimizer", "scheduler", "epoch", "rng")  # search.train's dict


def experiment_name(study: str) -> str:
    """Tune's experiment directory name for a run of ``study`` (one per invocation)."""
    return f"{study}-{time.strftime('%Y%m%d-%H%M%S')}"


def _split(location: str) -> tuple[str, str]:
    """(scheme, normalised path) of a local path or a URI."""
    if "://" in location:
        scheme, rest = location.split("://", 1)
        return scheme.lower(), posixpath.normpath("/" + rest.lstrip("/"))
    return "", str(Path(location).expanduser().resolve())


def inside_study(path: str, root: str, study: str) -> bool:
    """True when checkpoint ``path`` lies in an experiment directory of ``study`` under ``root``.

    Local paths are resolved first (``..`` and symbolic links cannot lead out).
    """
    scheme, target = _split(path)
    root_scheme, base = _split(root)
    if scheme != root_scheme:
        return False
    rel = posixpath.relpath(target, base) if scheme else os.path.relpath(target, base)
    parts = Path(rel).parts
    return (len(parts) >= 2 and parts[0] != ".."
            and re.fullmatch(re.escape(study) + _STAMP, parts[0]) is not None)


def refused_reason(path: str, root: str, study: str) -> str | None:
    """Why the stored resume point ``path`` is not read (one line), or None when it may be."""
    if inside_study(path, root, study):
        return None
    return (f"checkpoint {path} refused: outside the study's checkpoint directory "
            f"{posixpath.join(root, study)}-*; trained from scratch")


def load_train_state(path: str | None, model: Any, *, root: str, study: str, epochs: int
                     ) -> tuple[dict[str, Any] | None, str | None]:
    """The train state saved at checkpoint ``path`` for ``model``, and a note when it is not used.

    Returns ``(None, None)`` without a resume point or when its files have gone, and
    ``(None, reason)`` when the checkpoint is refused or discarded: outside the study's
    directory, not a plain weights file, or not a state of this network.
    """
    if not path:
        return None, None
    reason = refused_reason(path, root, study)
    if reason is not None:
        return None, reason
    import torch
    from ray import tune

    from search.trainable import CHECKPOINT_FILE

    try:
        with tune.Checkpoint(path).as_directory() as local:
            file = Path(local) / CHECKPOINT_FILE
            if not file.is_file():
                return None, None  # a vanished checkpoint: start the cell from scratch
            with torch.serialization.safe_globals(_numpy_rng_globals()):
                state = torch.load(file, map_location="cpu", weights_only=True)
    except OSError:
        return None, None
    except Exception as exc:  # UnpicklingError (not weights only), a corrupt zip, ...
        return None, (f"checkpoint {path} discarded: not a plain weights file "
                      f"({type(exc).__name__}: {_why(exc)}); trained from scratch")
    problem = _mismatch(state, model, epochs)
    if problem:
        return None, f"checkpoint {path} discarded: {problem}; trained from scratch"
    return state, None


def _numpy_rng_globals() -> list[Any]:
    """What numpy's RNG state (saved by ``search.train``: a uint32 array) needs to unpickle."""
    import numpy as np
    from numpy._core.multiarray import _reconstruct

    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _why(exc: BaseException) -> str:
    """The line of a failed load that names the cause (torch's weights-only error is long)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            rest = rest or (lines[i + 1] if i + 1 < len(lines) else line)
            return rest.split(". Please")[0][:200]  # drop torch's advice to allowlist it
    return lines[0][:200] if lines else type(exc).__name__


def _mismatch(state: Any, model: Any, epochs: int) -> str | None:
    """Why ``state`` is not a train state of ``model`` (one line), or None."""
    if not isinstance(state, dict):
        return f"holds a {type(state).__name__}, not a train state"
    missing = [k for k in _TRAIN_STATE_KEYS if k not in state]
    if missing:
        return f"no {', '.join(repr(k) for k in missing)} in it"
    weights, expected = state["model"], model.state_dict()
    if not isinstance(weights, dict):
        return "its 'model' is not a state dict"
    if set(weights) != set(expected):
        extra, absent = sorted(set(weights) - set(expected)), sorted(set(expected) - set(weights))
        return (f"weights do not match the network ({len(absent)} missing, e.g. "
                f"{absent[:1]}; {len(extra)} unexpected, e.g. {extra[:1]})")
    for name, tensor in expected.items():
        shape = tuple(getattr(weights[name], "shape", ()))
        if shape != tuple(tensor.shape):
            return f"{name} has shape {shape}, the network {tuple(tensor.shape)}"
    optimizer = state["optimizer"]
    groups = optimizer.get("param_groups") if isinstance(optimizer, dict) else None
    n_params = sum(1 for _ in model.parameters())
    if not isinstance(groups, list) or sum(len(g.get("params", ())) for g in groups) != n_params:
        return "its optimizer state does not match the network's parameters"
    if not isinstance(state["epoch"], int) or not 0 <= state["epoch"] <= epochs:
        return f"epoch {state['epoch']!r} is not within the {epochs} planned"
    return None


def remove_checkpoints(trial: Any, *, root: str, study: str) -> int:
    """Delete the checkpoints of a finished Tune ``trial`` and those it resumed from.

    Only directories named ``checkpoint_*`` inside the study's experiment directories are
    touched. Returns how many were deleted.
    """
    import pyarrow.fs as pafs

    storage = trial.storage
    filesystem = storage.storage_filesystem
    dirs = [storage.trial_fs_path]
    resumed = (getattr(trial, "config", None) or {}).get("resume_from")
    if resumed and inside_study(resumed, root, study):
        path = pafs.FileSystem.from_uri(resumed)[1] if "://" in resumed else resumed
        dirs.append(posixpath.dirname(str(path).rstrip("/")))
    deleted = 0
    for trial_dir in dirs:
        try:
            for entry in filesystem.get_file_info(pafs.FileSelector(trial_dir,
                                                                    allow_not_found=True)):
                if entry.type == pafs.FileType.Directory \
                        and entry.base_name.startswith("checkpoint_"):
                    filesystem.delete_dir(entry.path)
                    deleted += 1
        except OSError:
            continue  # gone already: nothing left to delete
    return deleted
