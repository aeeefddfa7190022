"""Declared contrasts: the comparisons a study commits to in its config, before any data.

Grammar (one string per contrast in ``study.contrasts``)::

    A - B        the difference of two groups: A minus B, paired over the seeds both ran
    each vs C    every other group of the control's kind (network or family) minus C

A group is a network label of the study (``mc3``, ``f_r2d``, ``3d_inflated``) or a family of
networks (``bottom-heavy``, ``2D``, ``t1``, ``inflated``); a name that is both is the network.
The minus sign needs spaces around it (names contain hyphens); ``−`` (U+2212) works too.

Torch-free: ``check_declarations`` validates a study's contrasts and metric directions when
its design is built (a bad one is one line naming ``study.contrasts``, exit 2); ``analysis``
and the CLI summary expand the same contrasts over the trials' labels and families.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from search.results.metrics import CONFIDENCE, MAX, DirectionError, has_direction, parse_directions
from search.results.seed_stats import CI_METHOD, holm, paired_contrast

_EACH = re.compile(r"^each\s+vs\.?\s+(?P<control>\S.*)$", re.IGNORECASE)
_MINUS = re.compile(r"\s+[-\u2212]\s+")
NETWORK, FAMILY = "network", "family"


class ContrastError(ValueError):
    """A contrast that does not parse or names no group of the study."""


@dataclass(frozen=True)
class Contrast:
    """One declared contrast: ``first - second``, or each group vs ``second`` (the control)."""

    text: str  # as declared
    first: str | None  # A of "A - B"; None for "each vs C"
    second: str  # B of "A - B", or the control C

    @property
    def is_each(self) -> bool:
        """True for ``each vs C``."""
        return self.first is None


def parse(text: str) -> Contrast:
    """One contrast from its text; ``ContrastError`` when it follows neither form."""
    text = str(text).strip()
    each = _EACH.match(text)
    if each:
        return Contrast(text, None, each.group("control").strip())
    parts = _MINUS.split(text)
    if len(parts) == 2 and all(p.strip() for p in parts):
        first, second = parts[0].strip(), parts[1].strip()
        if first == second:
            raise ContrastError(f"{text!r}: a group minus itself")
        return Contrast(text, first, second)
    raise ContrastError(f"{text!r}: write 'A - B' (spaces around the minus) or 'each vs C'")


@dataclass(frozen=True)
class Groups:
    """The groups a study's contrasts may name: its networks and their families."""

    families: Mapping[str, str]  # network label -> its family, in design order

    @classmethod
    def of(cls, pairs: Iterable[tuple[Any, Any]]) -> Groups:
        """From (label, family) pairs; unlabeled rows are left out."""
        out: dict[str, str] = {}
        for label, family in pairs:
            if isinstance(label, str) and label and label not in out:
                out[label] = family if isinstance(family, str) else ""
        return cls(out)

    def kind(self, name: str) -> str | None:
        """``"network"``, ``"family"``, or None when the study has no such group."""
        if name in self.families:
            return NETWORK
        return FAMILY if name in self.families.values() else None

    def names(self, kind: str) -> list[str]:
        """Every group of one kind, in design order."""
        if kind == NETWORK:
            return list(self.families)
        return list(dict.fromkeys(f for f in self.families.values() if f))

    def members(self, name: str) -> list[str]:
        """The network labels a group holds."""
        if name in self.families:
            return [name]
        return [label for label, family in self.families.items() if family == name]

    def describe(self) -> str:
        """``networks a, b; families x, y`` for error messages."""
        return (f"networks {', '.join(self.names(NETWORK)) or '-'}; "
                f"families {', '.join(self.names(FAMILY)) or '-'}")


def expand(contrast: Contrast, groups: Groups) -> list[tuple[str, str]]:
    """The (A, B) comparisons a contrast stands for, A minus B, in design order.

    Raises:
        ContrastError: a name is no group of the study, the groups share networks, or an
            ``each vs`` has nothing to compare.
    """
    for name in (contrast.first, contrast.second):
        if name is not None and groups.kind(name) is None:
            raise ContrastError(f"{contrast.text!r}: no network or family {name!r} in this "
                                f"study ({groups.describe()})")
    if contrast.first is not None:
        pairs = [(contrast.first, contrast.second)]
    else:
        kind = groups.kind(contrast.second)
        assert kind is not None
        pairs = [(g, contrast.second) for g in groups.names(kind) if g != contrast.second]
        if not pairs:
            raise ContrastError(f"{contrast.text!r}: the study has no other {kind} to compare "
                                f"with {contrast.second!r}")
    for a, b in pairs:
        shared = set(groups.members(a)) & set(groups.members(b))
        if shared:
            raise ContrastError(f"{contrast.text!r}: {a!r} and {b!r} share network(s) "
                                f"{', '.join(sorted(shared))}; a contrast compares disjoint "
                                f"groups")
    return pairs


def expand_all(texts: Sequence[str], groups: Groups) -> list[tuple[str, str, str]]:
    """Every comparison of a study's contrasts: ``(contrast text, A, B)``, each once.

    Raises:
        ContrastError: as ``expand``, or a comparison declared twice.
    """
    out: list[tuple[str, str, str]] = []
    seen: dict[tuple[str, str], str] = {}
    for text in texts:
        contrast = parse(text)
        for a, b in expand(contrast, groups):
            key = (a, b) if (b, a) not in seen else (b, a)
            if key in seen:
                raise ContrastError(f"{contrast.text!r}: {a} vs {b} is already declared by "
                                    f"{seen[key]!r}")
            seen[key] = contrast.text
            out.append((contrast.text, a, b))
    return out


def check_declarations(study: Any, cells: Sequence[Any],
                       error: type[Exception] = ContrastError) -> None:
    """Validate what a study declares before its data: contrasts, objectives' directions.

    ``study`` is a ``StudyConfig``, ``cells`` the grid design's cells (empty for a search).

    Raises:
        error: (``search.design.studies`` passes its ``StudyError``) one line starting with
            ``study.contrasts``, ``study.directions`` or ``study.objectives``.
    """
    try:
        declared = parse_directions(getattr(study, "directions", None) or ())
    except DirectionError as exc:
        raise error(str(exc)) from None
    for name in getattr(study, "objectives", None) or ():
        if not has_direction(str(name), declared):
            raise error(f"study.objectives: {name!r} has no known direction; declare it in "
                        f"study.directions (e.g. ['{name}:max'])")
    texts = list(getattr(study, "contrasts", None) or [])
    if not texts:
        return
    if not cells:
        raise error("study.contrasts: a free search (design=space) has no fixed arms; "
                    "declare contrasts in a grid study")
    try:
        expand_all(texts, Groups.of((c.label, c.family) for c in cells))
    except ContrastError as exc:
        raise error(f"study.contrasts: {exc}") from None


# Columns of a contrast table (``evaluate``), in display order.
COLUMNS: tuple[str, ...] = ("contrast", "a", "b", "n_pairs", "mean_a", "mean_b", "delta",
                            "ci_low", "ci_high", "ci_method", "p_t", "p_holm", "p_wilcoxon",
                            "wilcoxon_floor", "favours", "note")
WILCOXON_MIN_PAIRS = 6  # below this many seeds the signed-rank test cannot reach p < 0.05


def _seed_means(values: Mapping[tuple[str, int], float], members: list[str]) -> dict[int, float]:
    """Per seed, the mean over a group's networks; only seeds where every network has a value
    (so that every seed compares the same networks)."""
    by_seed: dict[int, list[float]] = {}
    for (label, seed), value in values.items():
        if label in members and math.isfinite(value):
            by_seed.setdefault(int(seed), []).append(value)
    return {seed: statistics.fmean(v) for seed, v in by_seed.items() if len(v) == len(members)}


def evaluate(texts: Sequence[str], values: Mapping[tuple[str, int], float], groups: Groups,
             mode: str = MAX, confidence: float = CONFIDENCE) -> list[dict[str, Any]]:
    """The declared contrasts of a study over its results, one row per comparison.

    Args:
        texts: the study's ``contrasts``.
        values: the metric of each COMPLETE (network label, seed).
        groups: the study's networks and families.
        mode: the metric's direction; ``favours`` names the group the difference favours.

    Each row (``COLUMNS``): A - B paired over the seeds both groups completed, with its
    Student-t interval, the paired t-test's p and its Holm adjustment over every comparison of
    the study, the exact Wilcoxon p and its floor (2 / 2^n, which is above 0.05 below 6 seeds:
    ``floor_note`` says so), and a note where a test cannot be made. A contrast naming no group of the results is one
    row with the reason in ``note``.
    """
    rows: list[dict[str, Any]] = []
    for text in texts:
        try:
            comparisons = expand(parse(text), groups)
        except ContrastError as exc:
            rows.append({**dict.fromkeys(COLUMNS, math.nan), "contrast": text, "a": "", "b": "",
                         "n_pairs": 0, "ci_method": CI_METHOD, "favours": "",
                         "note": str(exc)})
            continue
        for a, b in comparisons:
            mean_a = _seed_means(values, groups.members(a))
            mean_b = _seed_means(values, groups.members(b))
            shared = sorted(set(mean_a) & set(mean_b))
            stats = paired_contrast([mean_a[s] - mean_b[s] for s in shared], confidence)
            delta = stats["delta"]
            favours = "" if not math.isfinite(delta) or delta == 0 else (
                a if (delta > 0) == (mode == MAX) else b)
            note = ""
            if stats["n_pairs"] < 2:
                note = f"{stats['n_pairs']} shared seed(s): no test"
            elif not math.isfinite(stats["p_t"]):
                note = "differences identical across seeds: no t-test"
            rows.append({"contrast": text, "a": a, "b": b, "n_pairs": stats["n_pairs"],
                         "mean_a": statistics.fmean(mean_a[s] for s in shared) if shared
                         else math.nan,
                         "mean_b": statistics.fmean(mean_b[s] for s in shared) if shared
                         else math.nan,
                         "delta": delta, "ci_low": stats["ci_low"], "ci_high": stats["ci_high"],
                         "ci_method": CI_METHOD, "p_t": stats["p_t"], "p_holm": math.nan,
                         "p_wilcoxon": stats["p_wilcoxon"],
                         "wilcoxon_floor": stats["wilcoxon_floor"], "favours": favours,
                         "note": note})
    for row, adjusted in zip(rows, holm([r["p_t"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
    return rows


def floor_note(n_pairs: Iterable[int]) -> str:
    """Where the Wilcoxon floor bites (2 to 5 paired seeds), one sentence saying so; else ""."""
    small = sorted({int(n) for n in n_pairs if 2 <= int(n) < WILCOXON_MIN_PAIRS})
    if not small:
        return ""
    seeds = " or ".join(map(str, small))
    floors = ", ".join(f"{2 / 2 ** n:.3g} at {n}" for n in small)
    return (f"With {seeds} paired seeds the exact two-sided Wilcoxon test cannot go below "
            f"p = 2/2^n ({floors}), whatever the data: it cannot decide here; read the paired "
            "t-test (Holm-adjusted) and the interval of the difference.")
