"""Numbers written by people: clip sizes (``16x112x112``) and counts (``45G``, ``33.4M``)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from arch_space.errors import SpecError

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_clip(value: Any, where: str = "clip") -> tuple[int, int, int]:
    """Parse ``"16x112x112"``, ``[16, 112, 112]`` or ``(16, 112)`` into ``(T, H, W)``.

    Raises:
        SpecError: naming ``where`` when the value is not 2 or 3 positive integers.
    """
    if isinstance(value, str):
        parts: list[Any] = [p.strip() for p in value.lower().split("x")]
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        raise SpecError(f"{where}: expected 'TxHxW' or a list [T, H, W], got {value!r}")
    try:
        numbers = [int(p) for p in parts]
    except (TypeError, ValueError):
        raise SpecError(f"{where}: expected 'TxHxW' with integers, got {value!r}") from None
    if len(numbers) == 2:
        numbers.append(numbers[1])
    if len(numbers) != 3 or min(numbers) < 1:
        raise SpecError(f"{where}: expected three positive integers T x H x W, got {value!r}")
    return numbers[0], numbers[1], numbers[2]


def parse_count(value: Any, where: str) -> int:
    """Parse ``45e9``, ``"45G"``, ``"33.4M"`` or ``12000`` into an integer count."""
    if isinstance(value, bool):
        raise SpecError(f"{where}: expected a number such as 45e9 or '45G', got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([kKmMgGtT]?)\s*", str(value))
        if not match:
            raise SpecError(f"{where}: expected a number such as 45e9 or '45G', got {value!r}")
        try:
            number = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
        except ValueError:
            raise SpecError(f"{where}: not a number: {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise SpecError(f"{where}: must be a positive number, got {value!r}")
    return round(number)


def format_count(n: float) -> str:
    """``40696553472`` -> ``"40.70G"``."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"
