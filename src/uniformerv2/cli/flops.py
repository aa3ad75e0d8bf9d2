"""`uniformerv2 flops`: parameters and multiply-accumulates (GMAC) of model configurations."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from uniformerv2.cli._jobs import guarded
from uniformerv2.cli._options import positive_int

_EXAMPLE = """examples:
  uniformerv2 flops                                   # the four released reference configurations
  uniformerv2 flops uniformerv2_b16 --frames 16       # a variant at another clip length
  uniformerv2 flops uniformerv2-l14-k400-k710-32x336  # a zoo checkpoint at its own input size (no download)

GMAC counts one multiply-accumulate as one operation (the paper's and fvcore's convention), for one
view; multiply by the number of test views for the cost of a multi-view prediction.
"""


@dataclass(frozen=True)
class Spec:
    """One row of the table: a variant or zoo name and its input."""

    name: str
    frames: int
    size: int
    num_classes: int | None = None
    official_gmac: float | None = None


#: The released reference configurations (paper Table 1/2): B/16 8x224 K400, B/16 16x224 SSv2
#: (174 classes), L/14 8x224 K400 and L/14@336 8x336 K400.
REFERENCE = (
    Spec("uniformerv2_b16", 8, 224, 400, 148.3),
    Spec("uniformerv2_b16_ssv2", 16, 224, 174, 187.5),
    Spec("uniformerv2_l14", 8, 224, 400, 666.2),
    Spec("uniformerv2_l14_336", 8, 336, 400, 1568.2),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``flops`` sub-command."""
    parser = subparsers.add_parser(
        "flops",
        help="parameters and GMAC of model configurations",
        description="Count parameters and GMAC of one forward pass (batch 1, one view). Counting runs on the "
        "meta device: no weights are downloaded and no real compute happens.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("models", nargs="*", help="variant or zoo names (default: the four reference configurations)")
    parser.add_argument(
        "--frames", type=positive_int, default=None, help="frames per clip, for every model (default: each model's)"
    )
    parser.add_argument(
        "--size", type=positive_int, default=None, help="crop size, for every model (default: each model's)"
    )
    parser.set_defaults(func=run)


def resolve_spec(name: str, frames: int | None, size: int | None) -> Spec:
    """Input of a named model: zoo entries carry theirs; variants use 8 frames (16 for SSv2) at their
    resolution; an unknown name is left for :func:`measure` to reject with suggestions."""
    from uniformerv2.model.variants import list_variants, variant_config
    from uniformerv2.zoo import get_pretrained_cfg, list_pretrained

    if name in list_pretrained():
        pre = get_pretrained_cfg(name).preprocess
        return Spec(name, frames or pre.num_frames, size or pre.crop_size)
    if name in list_variants():
        config = variant_config(name)
        return Spec(name, frames or (16 if config.temporal_downsample else 8), size or config.input_resolution)
    return Spec(name, frames or 8, size or 224)


def measure(spec: Spec) -> tuple[int, float]:
    """(parameters, GMAC) of one view of ``spec``, counted on the meta device."""
    from uniformerv2.api import create_model
    from uniformerv2.flops import count_flops

    model = create_model(spec.name, num_classes=spec.num_classes).to("meta")
    patch = model.config.patch_size
    if spec.size % patch:
        raise ValueError(f"{spec.name}: --size {spec.size} is not a multiple of its patch size {patch}")
    result = count_flops(model, (1, 3, spec.frames, spec.size, spec.size))
    return int(result["params"]), float(result["gmac"])


def format_table(rows: list[tuple[Spec, int, float]]) -> str:
    """Aligned text table: model, input (T x S), parameters, GMAC, and the official figure where known."""
    lines = [("model", "input", "params", "GMAC", "official")]
    lines += [
        (
            s.name,
            f"{s.frames}x{s.size}",
            f"{p:,}",
            f"{g:.1f}",
            f"{s.official_gmac:.1f} ({(g / s.official_gmac - 1) * 100:+.1f}%)" if s.official_gmac else "-",
        )
        for s, p, g in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=False))
        )
        for line in lines
    )


@guarded
def run(args: argparse.Namespace) -> int:
    """Print the table."""
    if args.models:
        specs = [resolve_spec(name, args.frames, args.size) for name in args.models]
    else:
        specs = [
            s
            if args.frames in (None, s.frames) and args.size in (None, s.size)
            else Spec(s.name, args.frames or s.frames, args.size or s.size, s.num_classes)
            for s in REFERENCE
        ]
    print(format_table([(spec, *measure(spec)) for spec in specs]))
    return 0
