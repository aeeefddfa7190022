"""How a study was set up and the command that reproduces it, from its stored config.

``setup_markdown`` writes the task, data and training budget of a study; ``run_command`` the
``python -m search.run study=PRESET key=value ...`` line whose overrides are the keys where the
stored config differs from the preset's effective config (``preset_configs``: what
``search.run --cfg`` prints, composed in process by the torch-free ``search.design``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any


def config_value(config: dict[str, Any], *path: str) -> Any:
    """The value at ``path`` in a nested config, or None."""
    value: Any = config
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _join(*items: str | None) -> str:
    return ", ".join(i for i in items if i)


def _if(value: Any, text: str) -> str | None:
    """``text`` formatted with ``value``, or None when the config lacks it."""
    return None if value is None or value == [] else text.format(value)


def setup_markdown(config: dict[str, Any]) -> str:
    """The setup paragraph: task, data, training budget, from the stored config snapshot."""
    data, train, study = (config.get(k) or {} for k in ("data", "train", "study"))
    parts = []
    if data:
        clips = "/".join(map(str, study.get("clip_lens") or [data.get("clip_len", "?")]))
        size = data.get("size", "?")
        inner = _join(_if(data.get("num_classes"), "{} classes"),
                      _if(data.get("n_train"), "{} train"), _if(data.get("n_val"), "{} val"),
                      _if(data.get("scale"), "spatial scale {}"))
        parts.append(f"task `{data.get('task', '?')}`" + (f" ({inner})" if inner else "")
                     + f", clips of {clips} × {size} × {size}")
    if train:
        parts.append(_join(_if(train.get("epochs"), "{} epochs"),
                           _if(train.get("batch_size"), "batch {}"),
                           _if(train.get("optimizer"), "{}"), _if(train.get("lr"), "lr {}")))
    if study.get("design") == "inflation" and study.get("pretrain_epochs"):
        parts.append(f"2D twin pretrained {study['pretrain_epochs']} epochs on single frames")
    scheduler = config_value(config, "study", "scheduler", "kind")
    if scheduler and scheduler != "none":
        parts.append(f"scheduler {scheduler}")
    if study.get("sampler") and study.get("sampler") != "grid":
        parts.append(_join(f"sampler {study['sampler']}",
                           _if(study.get("num_samples"), "{} samples")))
    parts = [p for p in parts if p]
    return "**Setup.** " + "; ".join(parts) + "." if parts else ""


# --- the command that made it ------------------------------------------------------------------

# Config keys that say where and how fast a study ran, not what it computed.
NOT_OVERRIDES = ("storage", "hardware", "progress_interval_s", "summary")
_PRESETS: dict[str, dict[str, Any] | None] = {}  # preset name -> effective config (per process)


def preset_configs(presets: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """Each preset's effective config, as ``python -m search.run study=NAME --cfg`` prints it
    (composed in process: ``search.design`` is torch-free), cached for the process. None where
    it cannot be composed."""
    from search.design.composing import ConfigError, compose, to_run_config
    from search.design.resuming import snapshot

    for preset in sorted({p for p in presets if p not in _PRESETS}):
        try:
            value = snapshot(to_run_config(compose([f"study={preset}"])))
        except ConfigError:
            value = None
        # plain JSON types, as the printed YAML reads back (tuples as lists)
        _PRESETS[preset] = json.loads(json.dumps(value, default=str)) if value else None
    return {p: _PRESETS[p] for p in presets}

def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _override_value(value: Any) -> str:
    """A value as Hydra's override grammar reads it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_override_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    return f"'{text}'" if re.search(r"[\s,\[\]{}=:'\"()*]", text) or not text else text


def run_command(stored: dict[str, Any], preset: str,
                preset_config: dict[str, Any] | None) -> str:
    """``python -m search.run study=PRESET key=value ...`` that reproduces ``stored``.

    The overrides are the keys whose stored value differs from the preset's (keys the stored
    config lacks, added to the code later, are left out); where and how the study ran
    (``storage``, ``hardware.*``) is not part of it.
    """
    command = f"python -m search.run study={preset}"
    if preset_config is None or not stored:
        return command
    mine, theirs = _flatten(stored), _flatten(preset_config)
    overrides = [f"{key}={_override_value(mine[key])}" for key in sorted(mine)
                 if key in theirs and mine[key] != theirs[key]
                 and not key.startswith(NOT_OVERRIDES)]
    return " ".join([command, *overrides])



def variant_config(preset_config: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    """The effective config of variant ``name`` (``<study>.<label>``) of a preset: the variant's
    settings merged over the preset's, as ``search.design.variants.expand`` does; None without one."""
    import copy

    from search.design import variants

    if preset_config is None:
        return None
    listed = list((preset_config.get("study") or {}).get("variants") or [])
    try:
        labels = variants.check(listed)
    except variants.VariantError:
        return None
    label = name.rsplit(variants.SEPARATOR, 1)[-1]
    if label not in labels:
        return None
    merged = copy.deepcopy(preset_config)
    for dotted, value in variants.leaves({k: v for k, v in listed[labels.index(label)].items()
                                          if k != "label"}).items():
        *path, key = dotted.split(".")
        node = merged
        for part in path:
            node = node.setdefault(part, {})
        node[key] = value
    merged.setdefault("study", {})["name"] = name
    return merged
