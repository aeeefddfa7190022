"""Study variants: one study, run at several points of a knob (data, training or design).

A study config may list ``study.variants``: each a partial config over the ``data``, ``train``
and ``study`` sections, plus an optional ``label``::

    variants:
      - {data: {scale: 1}}
      - {data: {scale: 3}}
      - {label: n4096, data: {n_train: 4096}, train: {epochs: 10}}

``python -m search.run`` runs one study per variant, in order, named ``<study.name>.<label>``
(default label: the variant's settings, ``scale3``), each with the variant merged over the
composed config. So each point is a complete study of its own: checked, matched, stored with
its settings, resumed, summarised, with its declared contrasts evaluated within it (the
placement contrast per knob value, the inflated-vs-scratch contrast per training-set size).

Why separate studies rather than cells of one: a trial is identified by (study, arch, seed)
(``search.results.schema``), and a knob that changes only the data trains the same network on the same
seed. Networks that differ across the knob (clip length) can stay cells of one study
(``study.clip_lens``).

Torch-free (design layer): errors are ``VariantError`` naming ``study.variants[i]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SECTIONS: tuple[str, ...] = ("data", "train", "study")  # what a variant may set
FIXED: frozenset[str] = frozenset({"study.name", "study.variants", "study.seeds"})
SEPARATOR = "."  # <study.name>.<variant label>: a safe study name (letters, digits, . _ -)
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # no separator inside a label


class VariantError(ValueError):
    """A variant that cannot be applied; the message starts with ``study.variants[i]``."""


def leaves(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys and values of a nested mapping: ``{"data": {"scale": 2}}`` -> ``data.scale``."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(leaves(value, dotted))
        else:
            out[dotted] = value
    return out


def _text(value: Any) -> str:
    """A value as label text: ``3.0`` -> ``3``, ``1.5`` -> ``1p5``, ``[1, 3]`` -> ``1-3``."""
    if isinstance(value, list | tuple):
        return "-".join(_text(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return re.sub(r"[^A-Za-z0-9_-]", "", str(value).replace(".", "p"))


def label(index: int, variant: Mapping[str, Any]) -> str:
    """The variant's label: its ``label``, else its settings (``scale3``, ``n_train256-epochs32``)."""
    given = variant.get("label")
    if given not in (None, ""):
        return str(given)
    settings = leaves({k: v for k, v in variant.items() if k != "label"})
    if not settings:
        raise VariantError(f"study.variants[{index}]: sets nothing")
    return "-".join(f"{key.rsplit('.', 1)[-1]}{_text(v)}" for key, v in settings.items())


def check(variants: list[Mapping[str, Any]]) -> list[str]:
    """Validate the variants' shape; return their labels (unique, in order).

    Raises:
        VariantError: a variant is not a mapping, sets a section other than ``SECTIONS``, sets
            a fixed key (the study's name, seeds or variants), or repeats another's label.
    """
    labels: list[str] = []
    for i, variant in enumerate(variants):
        if not isinstance(variant, Mapping):
            raise VariantError(f"study.variants[{i}]: a mapping of data / train / study "
                               f"settings, got {variant!r}")
        for key, value in variant.items():
            if key == "label":
                continue
            if key not in SECTIONS or not isinstance(value, Mapping):
                raise VariantError(f"study.variants[{i}].{key}: a variant sets the "
                                   f"{' / '.join(SECTIONS)} sections (and a label)")
        for dotted in leaves({k: v for k, v in variant.items() if k != "label"}):
            if dotted in FIXED:
                raise VariantError(f"study.variants[{i}].{dotted}: fixed for every variant "
                                   f"of a study")
        name = label(i, variant)
        if not LABEL.fullmatch(name):
            raise VariantError(f"study.variants[{i}].label: {name!r}: use letters, digits, '_' "
                               f"and '-', starting with a letter or digit")
        if name in labels:
            raise VariantError(f"study.variants[{i}]: label {name!r} is used twice")
        labels.append(name)
    return labels


def expand(cfg: Any) -> list[tuple[str, Any]]:
    """``[(study name, composed config)]``, one per variant; ``[]`` when the study lists none.

    ``cfg`` is the composed (typed) OmegaConf config; each variant is merged over a copy of it,
    so its keys and types are checked by the schema (``omegaconf`` errors name the key).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    variants = OmegaConf.to_container(cfg.study.variants, resolve=True) or []
    labels = check(variants)
    out = []
    for i, (variant, name) in enumerate(zip(variants, labels, strict=True)):
        try:
            point = OmegaConf.merge(cfg, {k: v for k, v in variant.items() if k != "label"})
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", None)
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise VariantError(f"study.variants[{i}].{key}: {text}" if key
                               else f"study.variants[{i}]: {text}") from None
        point.study.name = f"{cfg.study.name}{SEPARATOR}{name}"
        out.append((point.study.name, point))
    return out


def family(name: str) -> str:
    """The study a variant's study (a name ``expand`` made) belongs to:
    ``placement_crossover.scale4`` -> ``placement_crossover``."""
    return name.rsplit(SEPARATOR, 1)[0]
