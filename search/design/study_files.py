"""Studies of one's own: ``study=path/to/my_study.yaml`` outside the package.

A study file has the form of the shipped ones (``search/conf/study/*.yaml``): top-level
``study:`` (and, optionally, ``data:`` / ``train:`` / ``hardware:``) sections. Its search space
may live in a file of its own, named relative to the study file::

    study:
      design: space
      space: {file: my_space.yaml, name: mine}   # keys beside `file` override the file's

The file's content is registered with Hydra's ConfigStore as an option of the ``study`` group,
so command-line overrides still win over it; ``study.name`` defaults to the file's stem. The
loaded space is stored in the study's config snapshot, so the database says what was searched
even when the files change. Torch-free. Bad input raises ``StudyFileError``: one line naming
the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SUFFIXES = (".yaml", ".yml")
CONFIG_PREFIX = "_file_"  # registered option names start so; no shipped study is named so


class StudyFileError(ValueError):
    """A study or space file is missing or is not a YAML mapping; the message names the file."""


def is_study_path(value: str) -> bool:
    """Whether a ``study=`` value names a file rather than a shipped study."""
    return value.endswith(SUFFIXES) or "/" in value or value.startswith(("~", "."))


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise StudyFileError(f"{what}: {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        reason = getattr(exc, "problem", None) or type(exc).__name__
        raise StudyFileError(f"{what}: {path}{line}: not valid YAML: {reason}") from None
    except OSError as exc:
        raise StudyFileError(f"{what}: {path}: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise StudyFileError(f"{what}: {path}: a YAML mapping is needed "
                             f"(got {type(data).__name__})")
    return data


def load_study_file(value: str) -> dict[str, Any]:
    """The config a study file contributes (global keys), its space file read in.

    Raises:
        StudyFileError: one line naming the study (or space) file.
    """
    path = Path(value).expanduser().resolve()
    data = _read_mapping(path, "study")
    study = data.get("study")
    if not isinstance(study, dict):
        raise StudyFileError(f"study: {path}: needs a top-level 'study:' mapping "
                             f"(see search/conf/study/*.yaml)")
    study.setdefault("name", path.stem)
    space = study.get("space")
    if isinstance(space, dict) and "file" in space:
        rest = {k: v for k, v in space.items() if k != "file"}
        space_path = (path.parent / str(space["file"])).expanduser().resolve()
        loaded = _read_mapping(space_path, "study.space.file")
        loaded.setdefault("name", space_path.stem)
        study["space"] = {**loaded, **rest}
    return data


def register_study_file(value: str) -> str:
    """Register a study file with Hydra's ConfigStore; return the ``study`` option to use."""
    from hydra.core.config_store import ConfigStore

    data = load_study_file(value)
    import hashlib

    path = str(Path(value).expanduser().resolve())
    name = CONFIG_PREFIX + hashlib.sha1(path.encode()).hexdigest()[:12]
    ConfigStore.instance().store(group="study", name=name, node=data, package="_global_")
    return name
