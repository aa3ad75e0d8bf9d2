"""Regenerate the checkpoint tables in docs/model_zoo.md from the registry.

Usage::

    python scripts/gen_model_zoo_doc.py          # rewrite the tables in place
    python scripts/gen_model_zoo_doc.py --check  # exit 1 if the file is out of date

Only the text between the ``<!-- zoo-tables:start -->`` and ``<!-- zoo-tables:end -->`` markers
is replaced.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlparse

from uniformerv2.zoo import get_pretrained_cfg, list_pretrained
from uniformerv2.zoo.pretrained import PretrainedCfg

DOC = Path(__file__).resolve().parents[1] / "docs" / "model_zoo.md"
START, END = "<!-- zoo-tables:start -->", "<!-- zoo-tables:end -->"
_HEADER = "| name | arch | frames×res | classes | label order | views | top-1 | pretraining | sources |"
_HOSTS = {
    "pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com": "Aliyun",
    "download.openmmlab.com": "OpenMMLab",
    "openaipublic.azureedge.net": "OpenAI",
}
_SECTIONS = (
    ("Official UniFormerV2 checkpoints", lambda c: c.checkpoint_format == "official"),
    ("MMAction2 checkpoints", lambda c: c.checkpoint_format == "mmaction2"),
    ("CLIP image encoders", lambda c: c.checkpoint_format == "clip"),
)


def _sources(cfg: PretrainedCfg) -> str:
    parts = []
    for source in cfg.sources:
        host = f"HF `{source.repo_id}`" if source.kind == "hf" else _HOSTS.get(urlparse(source.url).netloc, source.url)
        parts.append(host + (" (dead)" if "dead" in source.status else ""))
    return ", ".join(parts)


def _row(cfg: PretrainedCfg) -> str:
    clips, crops = cfg.views
    cells = [
        f"`{cfg.name}`",
        cfg.arch,
        f"{cfg.preprocess.num_frames}×{cfg.preprocess.crop_size}",
        str(cfg.num_classes or "–"),
        cfg.labels or "–",
        f"{clips}×{crops}",
        "–" if cfg.top1 is None else f"{cfg.top1:.1f}",
        cfg.pretraining,
        _sources(cfg),
    ]
    return "| " + " | ".join(cells) + " |"


def render_tables() -> str:
    """Markdown for every registry section."""
    cfgs = [get_pretrained_cfg(name) for name in list_pretrained()]
    blocks = [f"_{len(cfgs)} registered checkpoints._"]
    for title, keep in _SECTIONS:
        rows = [_row(cfg) for cfg in cfgs if keep(cfg)]
        separator = "|" + "---|" * (_HEADER.count("|") - 1)
        blocks.append("\n".join([f"### {title} ({len(rows)})", "", _HEADER, separator, *rows]))
    return "\n\n".join(blocks)


def updated(text: str) -> str:
    """``text`` with the section between the markers regenerated."""
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{render_tables()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the doc is up to date")
    args = parser.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    new = updated(text)
    if args.check:
        if new != text:
            print(f"{DOC} is out of date; run python scripts/gen_model_zoo_doc.py")
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
