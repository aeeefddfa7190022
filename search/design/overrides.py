"""Long integer lists on the command line, parsed here instead of by Hydra.

Hydra's override parser takes time quadratic in a list's length (``study.seeds=[0,...,19999]``
took ~58 s before anything was printed), so ``search.run`` takes such overrides out before
composing, composes with an empty list in their place (which still checks the key and that it
is a list), and sets the parsed values afterwards: on the typed ``RunConfig`` dataclass
(``assign_int_lists``, no per-item cost) or, for callers that want the DictConfig,
through OmegaConf (``set_int_lists``: linear, ~0.1 ms per item). ``key=range(stop)``, ``key=range(start, stop[, step])``
are accepted for integer lists too (Python's ``range``; e.g. ``study.seeds=range(1000)``).
"""

from __future__ import annotations

import re
import typing
from typing import Any

LONG_LIST = 16  # lists with more items than this take the fast path; shorter ones go to Hydra
_LIST = re.compile(r"([A-Za-z_][\w.]*)=\s*\[\s*(-?\d+(?:\s*,\s*-?\d+)*)\s*,?\s*\]\s*")
_RANGE = re.compile(r"([A-Za-z_][\w.]*)=\s*range\((.*)\)\s*")


class OverrideError(ValueError):
    """A malformed ``range(...)`` override; the message is one line naming the key."""


def split_int_lists(overrides: list[str]) -> tuple[list[str], dict[str, list[int]]]:
    """Take long integer-list and ``range(...)`` overrides out of ``overrides``.

    Returns:
        The overrides for Hydra (each taken one replaced by ``key=[]``) and the taken lists by
        dotted key, to be set with ``set_int_lists`` after composition.
    """
    kept: list[str] = []
    lists: dict[str, list[int]] = {}
    for item in overrides:
        match = _RANGE.fullmatch(item)
        if match is not None:
            key, args = match.groups()
            lists[key] = _range(key, args)
            kept.append(f"{key}=[]")
            continue
        match = _LIST.fullmatch(item)
        if match is not None and match.group(2).count(",") >= LONG_LIST:
            key, body = match.groups()
            lists[key] = [int(v) for v in body.split(",")]
            kept.append(f"{key}=[]")
            continue
        kept.append(item)
    return kept, lists


def _range(key: str, args: str) -> list[int]:
    try:
        bounds = [int(a) for a in args.split(",")]
        if not 1 <= len(bounds) <= 3:
            raise ValueError
        return list(range(*bounds))
    except ValueError:
        raise OverrideError(f"{key}: not a range of integers: range({args}) (use range(stop), "
                            f"range(start, stop) or range(start, stop, step))") from None


def set_int_lists(cfg: Any, lists: dict[str, list[int]]) -> None:
    """Set the lists taken by ``split_int_lists`` on a composed (typed) DictConfig."""
    from omegaconf import OmegaConf

    for key, values in lists.items():
        OmegaConf.update(cfg, key, values, merge=False)


def assign_int_lists(obj: Any, lists: dict[str, list[int]]) -> None:
    """Set the lists taken by ``split_int_lists`` on the typed config object (dataclasses).

    Raises:
        OverrideError: the key's field is not a ``list[int]`` (one line naming the key).
    """
    for key, values in lists.items():
        *path, name = key.split(".")
        target = obj
        for part in path:
            target = getattr(target, part)
        hint = typing.get_type_hints(type(target)).get(name)
        if hint != list[int]:
            raise OverrideError(f"{key}: wrong type: a list of integers, but {key} is "
                                f"{getattr(hint, '__name__', hint)}")
        setattr(target, name, values)
