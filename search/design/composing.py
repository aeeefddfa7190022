"""Composing a run's config: Hydra over ``search/conf`` (typed by ``search.design.config``), the
command-line overrides, then the typed ``RunConfig`` (one per ``study.variants`` entry).

Hydra's compose API is used: no ``outputs/`` or ``.hydra/`` directory, no change of directory,
no logging set-up. Bad input raises ``ConfigError``, one line naming the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # search/conf
GROUPS: tuple[str, ...] = ("study", "data", "train", "hardware", "tracking")


class ConfigError(ValueError):
    """Bad command-line input; the message is one line naming the key."""


def options(group: str) -> list[str]:
    """The presets of a config group (YAML files shipped in search/conf/<group>)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _group_override(overrides: list[str]) -> list[str]:
    """Catch unknown group options early, with the list of valid ones; a ``study=`` file path
    (``search.design.study_files``) is registered and its option returned in its place."""
    from search.design.study_files import StudyFileError, is_study_path, register_study_file

    out = []
    for item in overrides:
        match = re.fullmatch(r"(\w+)=(.*)", item)
        if match and match.group(1) == "study" and is_study_path(match.group(2)):
            try:
                item = f"study={register_study_file(match.group(2))}"
            except StudyFileError as exc:
                raise ConfigError(str(exc)) from None
        elif match and match.group(1) in GROUPS:
            group, value = match.groups()
            if value not in options(group):
                path_too = ", or a path to a .yaml file" if group == "study" else ""
                raise ConfigError(f"{group}: unknown {group} {value!r} "
                                  f"(choose from {', '.join(options(group))}{path_too})")
        out.append(item)
    return out


def _one_line(exc: BaseException) -> str:
    """Hydra / OmegaConf errors as one line: 'key: reason'."""
    from omegaconf.errors import OmegaConfBaseException

    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OmegaConfBaseException):
        exc, text = cause, str(cause)
    key = getattr(exc, "full_key", None)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    match = re.search(r"Could not override '([^']+)'", text)
    if match and not key:
        key = match.group(1)
    match_missing = re.search(r"Key '([^']+)' (?:is )?not in (?:struct|'\w+')", text)
    if match_missing:
        key = key or match_missing.group(1)
        return f"{key}: unknown key"
    match_convert = re.search(r"Value '(.*?)'(?: of type '\w+')? could not be converted to "
                              r"(\w+)", text)
    if match_convert:
        return f"{key or '?'}: wrong type: {match_convert.group(1)!r} is not a {match_convert.group(2)}"
    if "Could not find" in first and "/" in first:
        group = re.search(r"'(\w+)/", first)
        name = group.group(1) if group else "config"
        return f"{name}: {first}"
    first = re.sub(r"\s*full_key:.*$", "", first)
    return f"{key}: {first}" if key else first


def compose(overrides: list[str]) -> Any:
    """Compose the config with Hydra (no outputs/, no chdir) and return the DictConfig."""
    from search.design.overrides import set_int_lists

    cfg, int_lists = _compose(overrides)
    set_int_lists(cfg, int_lists)
    return cfg


def _compose(overrides: list[str]) -> tuple[Any, dict[str, list[int]]]:
    """``compose``, with long integer lists (``study.seeds=range(20000)``) left out of Hydra,
    whose override parser is quadratic in a list's length: they are returned apart."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from search.design.config import register_configs
    from search.design.overrides import split_int_lists

    register_configs()
    overrides = _group_override(overrides)
    GlobalHydra.instance().clear()
    try:
        overrides, int_lists = split_int_lists(overrides)
        with initialize_config_module(config_module="search.conf", version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=overrides)
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(_one_line(exc)) from None
    finally:
        GlobalHydra.instance().clear()
    return cfg, int_lists


def to_run_config(cfg: Any, int_lists: dict[str, list[int]] | None = None) -> Any:
    """The typed ``RunConfig`` object of a composed config (plus lists ``_compose`` set apart)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from search.design.overrides import OverrideError, assign_int_lists

    try:
        run_cfg: Any = OmegaConf.to_object(cfg)
        assign_int_lists(run_cfg, int_lists or {})
    except OmegaConfBaseException as exc:
        raise ConfigError(_one_line(exc)) from None
    except OverrideError as exc:
        raise ConfigError(str(exc)) from None
    if not run_cfg.study.name or run_cfg.study.name == "???":
        raise ConfigError("study.name: missing")
    check_study_name(run_cfg.study.name)
    from search.results.urls import UrlError, check_storable, to_url

    run_cfg.storage = to_url(run_cfg.storage)  # a bare file name means SQLite
    try:
        check_storable(run_cfg.storage)
    except UrlError as exc:
        raise ConfigError(str(exc)) from None
    from search.design.config import fill_defaults

    return fill_defaults(run_cfg)


def check_study_name(name: str) -> None:
    """``ConfigError`` unless ``name`` is safe as a database key and a directory name.

    The name becomes Tune's experiment directory under ``hardware.checkpoint_dir``: no path
    separators, no ``..``, at most ``search.results.names.STUDY_NAME_MAX`` characters.
    """
    from search.results.names import name_problem

    problem = name_problem(name)
    if problem is not None:
        raise ConfigError(f"study.name: {problem}")



def studies_of(cfg: Any, int_lists: Any = None) -> list[Any]:
    """The typed configs a composed config runs: itself, or one per ``study.variants`` entry."""
    from search.design.variants import VariantError, expand

    try:
        points = expand(cfg)
    except VariantError as exc:
        raise ConfigError(str(exc)) from None
    return ([to_run_config(point, int_lists) for _, point in points]
            or [to_run_config(cfg, int_lists)])

