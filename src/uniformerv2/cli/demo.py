"""`uniformerv2 demo`: a web page to try a model on a video (Gradio; ``pip install 'uniformerv2[demo]'``)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from uniformerv2.cli._jobs import check_checkpoint_path, fail, guarded
from uniformerv2.cli._options import port_number, positive_float

_EXAMPLE = """examples:
  uniformerv2 demo                                   # zoo models, http://127.0.0.1:7860
  uniformerv2 demo --model uniformerv2-b16-k600-k710-8x224 --port 8080
  uniformerv2 demo --checkpoint my_model.pyth --labels classes.txt --max-seconds 60
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo",
        help="web page to classify uploaded videos",
        description="Serve a page where people upload a video (or pick the sample), choose a model and see the "
        "top-5 classes, the frames the model sampled and, for long videos, a timeline. Models are loaded once "
        "and shared; requests queue. Bind to 127.0.0.1 (default) unless the page should be reachable by others.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model", default=None, help="zoo name, model directory or Hub id selected first")
    group.add_argument("--checkpoint", default=None, help="checkpoint file (.pyth, .pth, .safetensors) to serve")
    parser.add_argument("--labels", default=None, help="class names for --model/--checkpoint (one per line)")
    parser.add_argument("--only", action="store_true", help="offer only --model/--checkpoint, not the zoo")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=7860, help="port (default 7860)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    parser.add_argument(
        "--max-upload-mb", type=positive_float, default=200.0, help="largest upload in MB (default 200)"
    )
    parser.add_argument(
        "--max-seconds", type=positive_float, default=300.0, help="longest video in seconds (default 300)"
    )
    parser.add_argument("--sample", default=None, help="video offered as the example (default: assets/sample.mp4)")
    parser.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; exit code 2 when gradio is missing or the model cannot be loaded."""
    missing = [name for name in ("gradio", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing:
        return fail(f"the demo needs {' and '.join(missing)}: pip install 'uniformerv2[demo]'")
    from uniformerv2.serving.demo import DemoConfig, ModelCache, launch, zoo_models
    from uniformerv2.zoo import DEFAULT_MODEL, read_label_file

    chosen = args.checkpoint or args.model
    if args.checkpoint:
        check_checkpoint_path(args.checkpoint)
    if args.labels and not chosen:
        raise ValueError("--labels names the classes of --model or --checkpoint; give one of them")
    zoo = [] if args.only and chosen else zoo_models()
    models = (
        [chosen] + [m for m in zoo if m != chosen]
        if chosen
        else [DEFAULT_MODEL] + [m for m in zoo if m != DEFAULT_MODEL]
    )
    cache = ModelCache(args.device)
    if chosen and chosen not in zoo:  # a local checkpoint is loaded now, so a bad file is a startup error
        model = cache.get(chosen)
        if args.labels:
            model.pretrained_cfg["labels"] = read_label_file(args.labels, expected=model.config.num_classes)
    elif args.labels:
        cache.labels[chosen] = read_label_file(args.labels)
    config = DemoConfig(models, device=args.device, max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds)
    if args.sample:
        if not Path(args.sample).is_file():
            raise ValueError(f"{args.sample}: no such sample video")
        config.sample = Path(args.sample).resolve()
    print(f"serving http://{args.host}:{args.port} on {cache.device} (Ctrl+C stops)", flush=True)
    launch(config, args.host, args.port, cache)
    return 0
