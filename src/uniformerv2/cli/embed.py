"""`uniformerv2 embed`: one pooled embedding per video, saved as ``.npy``, with an ``index.csv``."""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from uniformerv2.atomic import NAME_MAX, atomic_save_npy, atomic_write_csv, short_name
from uniformerv2.cli._jobs import guarded, load_cli_model, prepare_outputs, run_options, sharded_or_local
from uniformerv2.cli._options import add_model_args, add_overwrite_arg, add_run_args, add_views_arg, positive_int
from uniformerv2.inference import Result, embed_many
from uniformerv2.inference._features import (
    crops_from_views,
    feature_names,
    save_snippet_features,
    snippet_features_many,
    snippet_lengths,
    write_feature_index,
)
from uniformerv2.inference.sharding import job_fingerprint
from uniformerv2.video.inputs import collect_videos

_EXAMPLE = """examples:
  uniformerv2 embed videos/ --out features/
  uniformerv2 embed list.csv --checkpoint model.pyth --views 1x1 --out features/
  torchrun --nproc-per-node 8 -m uniformerv2 embed videos/ --out features/   # sharded, resumable
  uniformerv2 embed videos/ --window 16 --stride 4 --views 1x1 --out features/  # snippet feature sequences

Each video gives features/<name>-<hash>.npy, a float32 array of shape (n,) (forward_features,
averaged over the views); features/index.csv maps video -> file (and lists failures).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``embed`` sub-command."""
    parser = subparsers.add_parser(
        "embed",
        help="extract pooled video embeddings",
        description="Save the pooled video embedding (before the classifier's LayerNorm, averaged over the "
        "test views) of every video as .npy. Reruns skip videos already done.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("videos", nargs="+", help="video files, directories (searched recursively) or .txt/.csv lists")
    parser.add_argument("--out", required=True, help="output directory for the .npy files and index.csv")
    add_model_args(parser)
    add_views_arg(parser)
    add_run_args(parser)
    add_overwrite_arg(parser)
    snippets = parser.add_argument_group("feature sequences (docs/features.md)")
    snippets.add_argument(
        "--window", type=positive_int, default=None, help="frames per snippet: one feature per snippet"
    )
    snippets.add_argument(
        "--stride", type=positive_int, default=None, help="frames between snippets (default window/2)"
    )
    snippets.add_argument("--layers", type=_layers, default=None, help="also save these blocks' tokens, e.g. 4,-1")
    parser.set_defaults(func=run)


def _layers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected block indices like 4,-1, got {text!r}") from None


def embedding_name(video: str) -> str:
    """File name of a video's embedding: its stem plus a hash of its path (unique and stable).

    The stem is shortened so the name fits the 255-byte limit of common filesystems.
    """
    digest = hashlib.sha1(os.path.abspath(video).encode("utf-8")).hexdigest()[:10]
    return f"{short_name(Path(video).stem, NAME_MAX - len(digest) - 5)}-{digest}.npy"


def _saver(out: Path) -> Any:
    def to_record(result: Result) -> dict[str, Any]:
        if not result.ok:
            return {"video": result.video, "error": result.error}
        name = embedding_name(result.video)
        vector = result.value.numpy().astype(np.float32)
        atomic_save_npy(vector, out / name)
        return {"video": result.video, "file": name, "dim": int(result.value.shape[0])}

    return to_record


@guarded
def run(args: argparse.Namespace) -> int:
    """Embed the videos; exit code 1 when any failed, 2 on a usage error."""
    prepare_outputs({}, {"--out": args.out})
    videos = collect_videos(args.videos)
    out = Path(args.out)
    model = load_cli_model(args)
    if args.window is not None or args.stride is not None:
        return _run_snippets(args, videos, out, model)
    if args.layers is not None:
        raise ValueError("--layers saves per-snippet tokens: give --window (and --stride) too")

    def results(todo: list[str]) -> Iterator[Result]:
        return embed_many(todo, model, views=args.views, **run_options(args))

    def write(records: list[dict[str, Any]]) -> None:
        atomic_write_csv(out / "index.csv", records, ["video", "file", "dim", "error"])

    def show(record: dict[str, Any]) -> str:
        return f"{record['video']} -> {out / record['file']}"

    settings = job_fingerprint(model, "embed", args.views, amp=args.amp, decode_short_side=args.decode_short_side)
    index = str(out / "index.csv")
    return sharded_or_local(
        videos, results, _saver(out), index, write, show, fingerprint=settings, overwrite=args.overwrite
    )


def _run_snippets(args: argparse.Namespace, videos: list[str], out: Path, model: Any) -> int:
    """Feature sequences: ``<id>.npy`` of shape (num_snippets, n) per video and ``index.json``.

    Finished videos are recorded in ``snippets.rank<r>.jsonl`` under a fingerprint of the weights and
    every setting; a rerun with other settings is refused unless ``--overwrite``.
    """
    crops, names = crops_from_views(args.views), feature_names(videos)
    options = {k: v for k, v in run_options(args).items() if k != "num_workers"}
    window, stride = snippet_lengths(model, args.window, args.stride)
    settings = job_fingerprint(
        model,
        "embed-snippets",
        amp=args.amp,
        decode_short_side=args.decode_short_side,
        window=window,
        stride=stride,
        crops=crops,
        layers=args.layers,
    )

    def results(todo: list[str]) -> Iterator[Result]:
        return snippet_features_many(
            todo, model, window=window, stride=stride, crops=crops, layers=args.layers, **options
        )

    def to_record(result: Result) -> dict[str, Any]:
        if not result.ok:
            return {"video": result.video, "error": result.error}
        return {"video": result.video, **save_snippet_features(result.value, out, names[result.video])}

    def write(records: list[dict[str, Any]]) -> None:
        meta = {"model": args.checkpoint or args.model, "crops": crops, "layers": args.layers, "settings": settings}
        write_feature_index(records, out / "index.json", meta)

    def show(record: dict[str, Any]) -> str:
        return f"{record['video']} -> {out / record['file']} ({record['num_snippets']} snippets)"

    shards = str(out / "snippets.json")
    return sharded_or_local(
        videos, results, to_record, shards, write, show, fingerprint=settings, overwrite=args.overwrite
    )
