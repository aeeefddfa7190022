"""Whether a rerun resumes a stored study: the stored config against the current one.

A study's results are defined by its ``study``, ``data`` and ``train`` sections; a rerun must
agree on them, except for changes that extend the study (more seeds, a larger budget) or only
change how fast it runs. Keys added to the schema since a study was stored count at the value
the study ran with (``LEGACY_VALUES``, else their default).
"""

from __future__ import annotations

import json
from typing import Any

from search.design.composing import ConfigError

# Config sections that define a study's results; a rerun must agree on them to resume.
DESIGN_KEYS: tuple[str, ...] = ("study", "data", "train")
# Changes that extend a study instead of redefining it (or only change how fast it runs): a
# rerun with them resumes.
EXTENDABLE_KEYS: frozenset[str] = frozenset({"study.seeds", "study.num_samples",
                                             "study.description", "data.num_workers",
                                             "data.decoder", "data.decode_device", "data.cache",
                                             "data.cache_dir"})
# What a study is called, and the sibling variants it was composed beside (a variant study's own
# overrides are already in its data and train sections): neither changes a trial, so a study
# renamed with search.results.renaming resumes under its new name, and its stored config then
# carries that name.
IDENTITY_KEYS: frozenset[str] = frozenset({"study.name", "study.variants"})


def snapshot(run_cfg: Any) -> dict[str, Any]:
    """The effective config stored with the study (plain JSON, defaults filled in; the storage
    URL without its password)."""
    import dataclasses

    from search.results.urls import mask

    data = dataclasses.asdict(run_cfg)
    data["storage"] = mask(str(data.get("storage", "")))
    return data


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{path}.{key}" if path else key)
        return out
    return [] if a == b else [path]


def check_resumable(stored_json: str, current: dict[str, Any], name: str) -> bool:
    """Refuse to continue a study whose design (study, data, train) was different.

    More seeds, a larger search budget or a new description extend a study and are allowed; so
    is a new name (``IDENTITY_KEYS``).

    Returns:
        True when the stored config should be replaced by the current one (it was extended).
    """
    stored = _with_new_defaults(json.loads(stored_json))
    diffs = _differences(_without_moot({k: stored.get(k) for k in DESIGN_KEYS}),
                         _without_moot({k: current.get(k) for k in DESIGN_KEYS}))
    blocking = [d for d in diffs if d not in EXTENDABLE_KEYS | IDENTITY_KEYS]
    if blocking:  # name a key whose value differs (a switch) before the ones it makes moot
        diff = min(blocking, key=lambda d: _get(stored, d) == _get(current, d))
        raise ConfigError(f"{diff}: study {name!r} exists with {diff}="
                          f"{_get(stored, diff)!r}, not {_get(current, diff)!r}; rerun with the "
                          f"same settings to resume, or set study.name=NEW for a new study")
    return bool(diffs)


def _with_new_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config with the keys added to the schema since it was stored at their defaults
    (e.g. ``study.match: none``): a study run before a key existed ran with its default."""
    import dataclasses

    from search.design.config import DataConfig, StudyConfig, TrainSettings

    def fill(data: Any, defaults: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(defaults, dict):
            return data
        return {**defaults, **{k: fill(v, defaults.get(k)) for k, v in data.items()}}

    sections = {"study": StudyConfig, "data": DataConfig, "train": TrainSettings}
    filled = {**stored, **{key: fill(stored[key], dataclasses.asdict(cls()))
                           for key, cls in sections.items() if isinstance(stored.get(key), dict)}}
    for (section, key), value in LEGACY_VALUES.items():  # what a study stored before a key ran with
        if isinstance(stored.get(section), dict) and key not in stored[section]:
            filled[section][key] = value
    return filled


# Keys whose default changed when they were added: a study stored before them ran without the
# feature, so it resumes that way (the plateau stopper came with schema 0003). The task knobs
# resolve a null to the task's own default, which is what a study stored before them ran with:
# no zoom (scale 1), events spread over the clip (event_gap 0), two directions.
# Before train.plateau_min_epochs a plateau could be called from the first epochs on (0).
LEGACY_VALUES: dict[tuple[str, str], Any] = {("train", "plateau_stop"): False,
                                             ("train", "plateau_min_epochs"): 0,
                                             ("data", "event_gap"): 0, ("data", "scale"): 1.0,
                                             ("data", "n_directions"): 2}


# Settings that cannot change a result while another one is off: with the plateau stopper off,
# when it would stop does not matter (bench_video, stored before plateau_min_epochs existed,
# resumed with min_epochs 0 and was then refused at its default, null).
MOOT_UNLESS: dict[tuple[str, str], tuple[str, ...]] = {
    ("train", "plateau_stop"): ("plateau_min_epochs", "plateau_patience", "plateau_min_delta",
                                "plateau_metric"),
}


def _without_moot(design: dict[str, Any]) -> dict[str, Any]:
    """The design without the settings that a switched-off feature makes irrelevant."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in design.items()}
    for (section, switch), keys in MOOT_UNLESS.items():
        block = out.get(section)
        if isinstance(block, dict) and block.get(switch) is False:
            for key in keys:
                block.pop(key, None)
    return out


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data
