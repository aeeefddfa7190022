"""What ``docs/findings.md`` reports: the shipped studies, their arms, claims and knobs.

One entry per study that ``scripts/run_studies.sh`` runs (plus the quick ``bottom_vs_top`` and
``free_search``, reported only when a database holds them). An entry names

- how a trial becomes an arm (``add_arms``: the columns ``arms`` name, in display order),
- the published claims its declared contrasts decide (``Claim``: which group the paper says
  wins; the contrast itself is declared in the study's config, ``search/conf/study/*.yaml``),
- the knob its variants sweep (``Knob``: ``placement_crossover.scale1`` ... are the variants of
  ``placement_crossover``, one study each, ``search.design.variants``),
- the published orderings its arms speak to (keys of ``analysis.findings_published``).

Torch-free, like all of ``analysis``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from search.results import metrics

METRIC = metrics.VAL_ACC1


@dataclass(frozen=True)
class Claim:
    """A published claim that one declared contrast decides."""

    text: str  # the claim in one sentence, with its source
    winner: str  # the group (network label or family) the claim says is better
    loser: str  # the group it says is worse
    metric: str = METRIC  # the metric the contrast is read on (its direction from its name)


@dataclass(frozen=True)
class Knob:
    """The setting a study's variants sweep, and the contrasts plotted against it."""

    key: str  # dotted key of the stored config (``data.scale``)
    label: str  # axis title
    contrasts: tuple[tuple[str, str], ...]  # (A, B) pairs of groups: A - B against the knob
    meaning: str  # what moving the knob does to the data, one clause


@dataclass(frozen=True)
class Study:
    """A shipped study: its arms, extra tables and figures, and the claims it tests."""

    name: str
    title: str  # section heading
    claim: str  # the published claims under test (template prose, written once)
    arms: tuple[str, ...]  # columns naming an arm, in display order
    add_arms: Callable[[pd.DataFrame], pd.DataFrame]  # adds the ``arms`` columns to trials
    color: str = "arm"  # Pareto-plot colour column ("family" uses the dashboard's colours)
    by_family: bool = False  # also an effect table by placement family
    lines: tuple[str, str] | None = None  # (x, line) for effect_lines_figure
    optional: bool = False  # no section unless the database (or the file) has it
    preset: str = ""  # the search.run preset it was run from, when not ``name`` (variants)
    claims: tuple[Claim, ...] = ()  # decided by the declared contrasts, per task (variant)
    knob: Knob | None = None  # the knob its variants sweep
    published: tuple[str, ...] = ()  # keys of findings_published.PUBLISHED
    extra_metrics: tuple[str, ...] = ()  # declared contrasts also read on these metrics
    variant_of: str = ""  # the catalogue study a variant belongs to ("" for the study itself)
    networks_csv: str = ""  # knob studies: every variant's per-arm table stacked, this file name

    @property
    def study_preset(self) -> str:
        """The ``study=`` preset of ``python -m search.run`` for this study."""
        return self.preset or self.name

    @property
    def family_name(self) -> str:
        """The catalogue study this one belongs to (itself unless a variant)."""
        return self.variant_of or self.name


# --- arms of each study -----------------------------------------------------------------------


def _network(df: pd.DataFrame) -> pd.Series:
    labels = df["label"] if "label" in df else pd.Series(None, index=df.index, dtype=object)
    return labels.where(labels.notna() & (labels != ""), df["arch_id"].astype(str).str[:8])


def _block_cols(df: pd.DataFrame, field_name: str) -> list[str]:
    return [c for c in df.columns if c.startswith("stage") and c.endswith(f".{field_name}")]


def _temporal_blocks(df: pd.DataFrame) -> pd.Series:
    """Blocks (stem excluded) that mix frames: kind other than 2D and t_kernel > 1."""
    count = pd.Series(0, index=df.index)
    for col in _block_cols(df, "kind"):
        t_col = col.removesuffix(".kind") + ".t_kernel"
        t = df[t_col] if t_col in df else pd.Series(1, index=df.index)
        count += ((df[col].astype(str) != "2d") & (t.fillna(1) > 1)).astype(int)
    return count


def arms_placement(df: pd.DataFrame) -> pd.DataFrame:
    """Arms of the placement studies: the network (label), its family and its 3D blocks."""
    df = df.assign(network=_network(df))
    df["arm"] = df["network"]
    df["3D blocks"] = _temporal_blocks(df)
    return df


def arms_conv_kinds(df: pd.DataFrame) -> pd.DataFrame:
    """Arms of conv_kinds: the kind (the label; unlabelled: the first block's kind)."""
    kind = _network(df)
    if "stage1.block1.kind" in df:  # a network without a label: its first block's kind
        kind = kind.where(df["label"].notna(), df["stage1.block1.kind"].astype(str))
    return df.assign(kind=kind, arm=kind)


def arms_temporal_extent(df: pd.DataFrame) -> pd.DataFrame:
    """Arms of temporal_extent: (clip length T, largest temporal kernel t)."""
    t_cols = _block_cols(df, "t_kernel")
    t = df[t_cols].max(axis=1).fillna(1).astype(int) if t_cols else pd.Series(1, index=df.index)
    clip = df["clip_len"].astype(int) if "clip_len" in df else pd.Series(0, index=df.index)
    df = df.assign(t_kernel=t, clip_len=clip)
    df["arm"] = "t=" + t.astype(str) + ", T=" + clip.astype(str)
    return df


INITS = ("scratch", "inflated", "shuffled")  # how an inflation arm's weights start


def arms_inflation(df: pd.DataFrame) -> pd.DataFrame:
    """Arms of inflation: (kind, init), init from the design family, else from the spec."""
    infl_cols = [c for c in df.columns if c.endswith(".inflate")]
    from_spec = (df[infl_cols].fillna(False).astype(bool).any(axis=1) if infl_cols
                 else pd.Series(False, index=df.index))
    design = df["design_family"] if "design_family" in df else pd.Series(None, index=df.index)
    init = design.where(design.isin(list(INITS)),
                        from_spec.map({True: "inflated", False: "scratch"}))
    network = _network(df)
    kind = network.str.replace(r"_(" + "|".join(INITS) + r")$", "", regex=True)
    return df.assign(kind=kind, init=init, arm=kind + " " + init)


def arms_family(df: pd.DataFrame) -> pd.DataFrame:
    """Arms of a free search: the placement family."""
    return df.assign(arm=df["family"].astype(str))


# --- the claims -------------------------------------------------------------------------------

TRAN_PLACEMENT = Claim(
    "Tran et al. 2018 (R(2+1)D): bottom-heavy 3D (MCx) is more accurate than top-heavy (rMCx)",
    "bottom-heavy", "top-heavy")
S3D_PLACEMENT = Claim(
    "Xie et al. 2018 (S3D): top-heavy 3D is at least as accurate as bottom-heavy at the same "
    "cost", "top-heavy", "bottom-heavy")
TRAN_3D = Claim("Tran et al. 2018: 3D convolution (R3D) beats 2D (f-R2D)", "uniform 3D", "2D")
TRAN_PLACEMENT_TEXT = (
    "Tran et al. 2018 (R(2+1)D): bottom-heavy mixed convolutions (MCx) are more accurate than "
    "top-heavy ones (rMCx) at equal depth. Xie et al. 2018 (S3D): top-heavy is the better "
    "speed–accuracy trade-off, because 3D convolutions on downsampled maps are cheap.")

STUDIES: tuple[Study, ...] = (
    Study("placement_crossover",
          "Does the answer move with the data? (bottom- vs top-heavy across spatial scale)",
          TRAN_PLACEMENT_TEXT + " If the motion survives the spatial downsampling (large, fast "
          "objects), top-heavy 3D should catch up: a crossover.",
          arms=("family", "network"), add_arms=arms_placement, color="family",
          claims=(TRAN_PLACEMENT, S3D_PLACEMENT),
          knob=Knob("data.scale", "spatial scale of the moving digits (size and speed ×)",
                    (("bottom-heavy", "top-heavy"), ("bottom-heavy", "uniform 3D")),
                    "growing the digits and their speed together (so that the motion "
                    "survives more spatial downsampling)"),
          published=("tran2018_table2", "s3d2018_placement")),
    Study("bottom_vs_top_data", "Where should 3D convolution live? (MCx vs rMCx, two data sizes)",
          TRAN_PLACEMENT_TEXT, arms=("family", "network"), add_arms=arms_placement,
          color="family", by_family=True, claims=(TRAN_PLACEMENT, S3D_PLACEMENT, TRAN_3D),
          knob=Knob("data.n_train", "training clips",
                    (("bottom-heavy", "top-heavy"), ("uniform 3D", "2D")),
                    "adding training clips"),
          published=("tran2018_table2", "s3d2018_placement"),
          networks_csv="bottom_vs_top_arms.csv"),
    Study("bottom_vs_top", "Where should 3D convolution live? (quick, 3 seeds)",
          TRAN_PLACEMENT_TEXT, arms=("family", "network"), add_arms=arms_placement,
          color="family", by_family=True, optional=True,
          claims=(TRAN_PLACEMENT, S3D_PLACEMENT, TRAN_3D),
          published=("tran2018_table2", "s3d2018_placement")),
    Study("conv_kinds", "Which temporal convolution? (2D, 3D, P3D-A/B/C, the A→B→C cycle)",
          "Qiu et al. 2017 (P3D): a cycle of sequential (A), parallel (B) and hybrid (C) "
          "factorized blocks beats each of them alone.",
          arms=("kind",), add_arms=arms_conv_kinds,
          claims=(Claim("Qiu et al. 2017 (P3D): the A→B→C cycle beats single P3D kinds",
                        "P3D cycle", "p3d"),),
          published=("qiu2017_p3d",)),
    Study("temporal_extent", "How far in time? (input length T, kernel extent t)",
          "Varol et al. 2018 (long-term temporal convolutions): longer inputs help tasks with "
          "long-range structure; temporal kernels beat 2D where order matters.",
          arms=("clip_len", "t_kernel"), add_arms=arms_temporal_extent,
          lines=("t_kernel", "clip_len"),
          claims=(Claim("Varol et al. 2018 (LTC): a longer input (T = 16 vs 12, events fixed) "
                        "helps", "3d_t5_T16", "3d_t5_T12"),
                  Claim("Varol et al. 2018: a longer temporal kernel (t = 7) beats 2D (t = 1) "
                        "on a long-range task", "t7", "t1")),
          published=("varol2018_ltc",)),
    Study("inflation", "Does inflating 2D weights help? (inflated vs scratch, by data size)",
          "Carreira & Zisserman 2017 (I3D): inflating 2D-pretrained weights helps, most when "
          "video data is scarce.",
          arms=("kind", "init"), add_arms=arms_inflation,
          claims=(Claim("Carreira & Zisserman 2017 (I3D): inflated 2D weights beat training "
                        "from scratch", "inflated", "scratch"),),
          knob=Knob("data.n_train", "training clips (same number of optimizer steps)",
                    (("inflated", "scratch"),), "adding training clips at the same step count"),
          published=("i3d2017_inflation",)),
    Study("factorization", "Does factorizing 3D help at equal parameters? (R(2+1)D vs R3D)",
          "Tran et al. 2018 (Sec. 3.5, Fig. 4): at the same parameter count R(2+1)D reaches a "
          "lower training loss and a higher accuracy than R3D.",
          arms=("network",), add_arms=arms_placement,
          claims=(Claim("Tran et al. 2018: R(2+1)D is more accurate than R3D at equal "
                        "parameters", "r2plus1d", "r3d"),
                  Claim("Tran et al. 2018: R(2+1)D reaches a lower training loss than R3D",
                        "r2plus1d", "r3d", metric=metrics.TRAIN_LOSS)),
          extra_metrics=(metrics.TRAIN_LOSS,),
          published=("tran2018_factorization",)),
    Study("free_search", "Free search (NSGA-II under a MAC budget)",
          "What a free multi-objective search over per-block conv choices finds.",
          arms=("family",), add_arms=arms_family, color="family", optional=True),
)


def by_name(name: str) -> Study | None:
    """The catalogue entry called ``name`` (not a variant), or None."""
    return next((s for s in STUDIES if s.name == name), None)
