"""Declarative key maps between our state-dict layout and the official / MMAction2 / CLIP ones.

Every key must match a rule; an unknown key raises, so nothing is dropped silently.
Rules are (our pattern, their pattern) with ``{i}`` standing for a layer index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch

from uniformerv2.errors import CheckpointError

_LMHRA_PARTS = (("norm", "0"), ("reduce", "1"), ("temporal", "2"), ("expand", "3"))

#: ours <-> official (keys relative to the official ``backbone.`` wrapper).
OFFICIAL_RULES: tuple[tuple[str, str], ...] = (
    ("conv1.{rest}", "conv1.{rest}"),
    ("class_embedding", "class_embedding"),
    ("positional_embedding", "positional_embedding"),
    ("ln_pre.{rest}", "ln_pre.{rest}"),
    ("fusion.query", "transformer.temporal_cls_token"),
    ("balance", "transformer.balance"),
    *(
        (f"blocks.{{i}}.lmhra{k}.{ours}.{{rest}}", f"transformer.resblocks.{{i}}.lmhra{k}.pos_embed.{theirs}.{{rest}}")
        for k in (1, 2)
        for ours, theirs in _LMHRA_PARTS
    ),
    ("blocks.{i}.{rest}", "transformer.resblocks.{i}.{rest}"),
    ("global_blocks.{i}.dpe.{rest}", "transformer.dpe.{i}.{rest}"),
    ("global_blocks.{i}.{rest}", "transformer.dec.{i}.{rest}"),
    ("head.norm.{rest}", "transformer.proj.0.{rest}"),
    ("head.fc.{rest}", "transformer.proj.2.{rest}"),
)

#: ours <-> MMAction2 recognizer keys (with their ``backbone.`` / ``cls_head.`` prefixes).
MMACTION2_RULES: tuple[tuple[str, str], ...] = tuple(
    (ours, "backbone." + theirs) for ours, theirs in OFFICIAL_RULES if not ours.startswith("head.")
) + (
    ("head.norm.{rest}", "backbone.transformer.norm.{rest}"),
    ("head.fc.{rest}", "cls_head.fc_cls.{rest}"),
)

#: keys other tools store that carry no weights of ours.
MMACTION2_IGNORE = re.compile(r"^data_preprocessor\.")


def _compile(pattern: str) -> re.Pattern[str]:
    regex = re.escape(pattern).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{rest\}", r"(?P<rest>.+)")
    return re.compile(f"^{regex}$")


def _convert_key(key: str, rules: Iterable[tuple[str, str]]) -> str | None:
    for source, target in rules:
        match = _compile(source).match(key)
        if match:
            return target.format(**match.groupdict())
    return None


def remap(
    state_dict: Mapping[str, torch.Tensor],
    rules: Iterable[tuple[str, str]],
    *,
    reverse: bool = False,
    ignore: re.Pattern[str] | None = None,
    source: str = "checkpoint",
) -> dict[str, torch.Tensor]:
    """Rename every key through ``rules`` (ours -> theirs, or theirs -> ours with ``reverse``).

    Raises:
        CheckpointError: a key matches no rule (listing up to ten of them).
    """
    rules = [(b, a) for a, b in rules] if reverse else list(rules)
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        if ignore is not None and ignore.match(key):
            continue
        new = _convert_key(key, rules)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise CheckpointError(f"{source}: {len(unknown)} keys of unknown layout: {shown}")
    return out
