"""The arms of a study before any training: ``python -m search.run ... --dry-run``.

One row per arm of a grid design — label, family, widths, MMACs, parameters, and what matched
compute did (width scale, deviation from the common target) — from the specs alone (torch-free
cost estimates equal to the fvcore counts the driver stores). Nothing is started or stored.
"""

from __future__ import annotations

from typing import Any

from arch_space.estimate import estimate_macs, estimate_params
from arch_space.scaling import format_count
from search.design.matching import COST_NAMES
from search.design.studies import Design


def arm_rows(design: Design) -> list[dict[str, Any]]:
    """One dict per arm: label, family, widths, stem_mid, macs, params, scale, deviation."""
    rows = []
    for cell in design.cells:
        spec = cell.spec
        rows.append({
            "label": cell.label, "family": cell.family,
            "widths": [spec.stem.width, *(s.width for s in spec.stages)],
            "stem_mid": spec.stem.mid_width if spec.stem.kind == "2plus1d" else None,
            "clip": (spec.clip_len, spec.crop_size, spec.crop_size),
            "macs": estimate_macs(spec), "params": estimate_params(spec),
            "scale": cell.matching.get("match_scale"),
            "deviation": cell.matching.get("match_deviation")})
    return rows


def format_design(design: Design, name: str) -> str:
    """The dry-run report: a header saying how arms were matched, the table, the cost span."""
    if not design.is_grid:
        return (f"study {name}: a search over {design.space.size():,} networks, "
                f"{design.num_samples} trials x {len(design.seeds)} seed(s); nothing to match "
                f"(the space's iso_macs block scales its points)")
    rows = arm_rows(design)
    match = design.matching
    if match is None:
        head = f"study {name}: {len(rows)} arms x {len(design.seeds)} seed(s), match none " \
               f"(arms keep their widths; cost varies)"
    else:
        head = (f"study {name}: {len(rows)} arms x {len(design.seeds)} seed(s), match "
                f"{match.mode}: target {format_count(match.target)} {COST_NAMES[match.mode]} "
                f"({match.rule}), widths multiples of {match.multiple}, tolerance "
                f"+-{match.tol:.0%}")
    table = [["arm", "family", "widths (stem|stages)", "clip", "MMACs", "params", "scale",
              "vs target"]]
    for r in rows:
        stem = f"{r['widths'][0]}" + (f"/{r['stem_mid']}" if r["stem_mid"] is not None else "")
        table.append([
            r["label"], r["family"], f"{stem}|{'-'.join(map(str, r['widths'][1:]))}",
            "x".join(map(str, r["clip"])), f"{r['macs'] / 1e6:.2f}", format_count(r["params"]),
            "-" if r["scale"] is None else f"x{r['scale']:.2f}",
            "-" if r["deviation"] is None else f"{r['deviation']:+.1%}"])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [head, ""]
    for row in table:
        lines.append("  ".join(c.ljust(w) if i < 4 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    macs = [r["macs"] for r in rows]
    params = [r["params"] for r in rows]
    lines += ["", f"span: MACs x{max(macs) / min(macs):.2f}, params "
                  f"x{max(params) / min(params):.2f} (largest / smallest arm); a (2+1)D stem "
                  f"shows its mid width as width/mid"]
    return "\n".join(lines)
