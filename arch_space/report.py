"""Print the cost table of named presets: ``python -m arch_space.report r3d_18 mc3_18 --clip 16x112x112``.

Columns: name, arch_id, parameters, GMACs (conv + linear multiply-adds; fvcore counts one
multiply-add as one "flop"), GFLOPs (2 × MACs), activations (elements written by conv and
linear layers) and, with ``--latency N``, the median forward latency of N runs. ``--per-layer``
adds each network's stem / block / fc rows. Bad arguments give one line naming the argument and
exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from arch_space.spec import SpecError


def _clip(text: str) -> tuple[int, int, int]:
    from arch_space.space import parse_clip

    try:
        return parse_clip(text, "--clip")
    except SpecError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--clip: ")) from None


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument gives one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m arch_space.report",
        description="Cost table (params, MACs, FLOPs, activations, latency) of named presets.")
    parser.add_argument("presets", nargs="*", metavar="PRESET", help="registered preset names")
    parser.add_argument("--all", action="store_true", help="every registered preset")
    parser.add_argument("--clip", type=_clip, default=(16, 112, 112), metavar="TxHxW",
                        help="input clip size, frames x height x width; TxS means TxSxS "
                             "(default 16x112x112)")
    parser.add_argument("--classes", type=int, default=400, help="classifier outputs (default 400)")
    parser.add_argument("--latency", type=int, default=0, metavar="N",
                        help="time N forward passes (after warm-up) and report the median")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--batch", type=int, default=1, help="clips per forward pass (default 1)")
    parser.add_argument("--per-layer", action="store_true", help="also print per-layer rows")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: torch's choice)")
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _table(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the report; return the process exit status (0 ok, 2 bad arguments)."""
    from arch_space.presets import list_presets

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # _Parser.error printed a one-line reason
        return int(exit_.code or 0)
    names = list_presets() if args.all else list(args.presets)
    if not names:
        return _fail("PRESET: name at least one preset, or pass --all "
                     f"(registered: {', '.join(list_presets())})")
    unknown = [n for n in names if n not in list_presets()]
    if unknown:
        return _fail(f"PRESET: unknown preset {unknown[0]!r}; registered: "
                     f"{', '.join(list_presets())}")
    for flag, value, minimum in (("--classes", args.classes, 1), ("--latency", args.latency, 0),
                                 ("--batch", args.batch, 1), ("--threads", args.threads, 0)):
        if value < minimum:
            return _fail(f"{flag}: must be >= {minimum}, got {value}")
    _, h, w = args.clip
    if h != w:
        return _fail(f"--clip: crops are square (H = W), got {h}x{w}")

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        return _fail(f"--device: {args.device!r} requested but CUDA is not available")
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _report(args, names)
    finally:
        torch.set_num_threads(threads)


def _report(args: argparse.Namespace, names: list[str]) -> int:
    from arch_space.cost import measure_cost
    from arch_space.presets import preset

    t, h, w = args.clip
    header = ["name", "arch_id", "params", "GMACs", "GFLOPs", "activations", "latency_ms"]
    specs = {}
    for name in names:  # every spec first: a clip that does not fit fails before any measuring
        try:
            specs[name] = preset(name, num_classes=args.classes, clip_len=t, crop_size=h)
        except SpecError as err:
            return _fail(f"--clip: {t}x{h}x{w} does not fit preset {name!r}: {err}")
    rows, layer_blocks = [header], []
    for name, spec in specs.items():
        report = measure_cost(spec, (t, h, w), device=args.device, latency_runs=args.latency,
                              batch=args.batch)
        latency = "-" if report.latency_ms is None else f"{report.latency_ms:.1f}"
        rows.append([name, report.arch_id, f"{report.params:,}", f"{report.gmacs:.3f}",
                     f"{report.gflops:.3f}", _human(report.activations), latency])
        if args.per_layer:
            layer_rows = [["layer", "kind", "params", "MACs", "share"]]
            for row in report.per_layer:
                layer_rows.append([row["layer"], row["kind"], f"{row['params']:,}",
                                   _human(row["macs"]),
                                   f"{row['macs'] / max(report.macs, 1):.1%}"])
            layer_blocks.append((name, _table(layer_rows, right={2, 3, 4})))
    print(f"clip {t}x{h}x{w}, batch {args.batch}, {args.classes} classes, device {args.device}; "
          "MACs = conv + linear multiply-adds (fvcore), FLOPs = 2 x MACs")
    print(_table(rows, right={2, 3, 4, 5, 6}))
    for name, block in layer_blocks:
        print(f"\n{name}")
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
