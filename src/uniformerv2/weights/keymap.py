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

#: OpenAI CLIP visual keys (``visual.`` stripped) <-> Hugging Face ``transformers`` ``CLIPModel`` /
#: ``CLIPVisionModel`` keys. The separate q/k/v projections are fused by :data:`HF_CLIP_QKV`.
HF_CLIP_RULES: tuple[tuple[str, str], ...] = (
    ("class_embedding", "vision_model.embeddings.class_embedding"),
    ("conv1.weight", "vision_model.embeddings.patch_embedding.weight"),
    ("positional_embedding", "vision_model.embeddings.position_embedding.weight"),
    ("ln_pre.{rest}", "vision_model.pre_layrnorm.{rest}"),
    ("ln_post.{rest}", "vision_model.post_layernorm.{rest}"),
    ("transformer.resblocks.{i}.ln_1.{rest}", "vision_model.encoder.layers.{i}.layer_norm1.{rest}"),
    ("transformer.resblocks.{i}.ln_2.{rest}", "vision_model.encoder.layers.{i}.layer_norm2.{rest}"),
    ("transformer.resblocks.{i}.attn.out_proj.{rest}", "vision_model.encoder.layers.{i}.self_attn.out_proj.{rest}"),
    ("transformer.resblocks.{i}.mlp.c_fc.{rest}", "vision_model.encoder.layers.{i}.mlp.fc1.{rest}"),
    ("transformer.resblocks.{i}.mlp.c_proj.{rest}", "vision_model.encoder.layers.{i}.mlp.fc2.{rest}"),
)

#: ``in_proj_{weight,bias}`` = concatenation of these three (PyTorch ``MultiheadAttention`` order q, k, v).
HF_CLIP_QKV = (
    "transformer.resblocks.{i}.attn.in_proj_{rest}",
    tuple(f"vision_model.encoder.layers.{{i}}.self_attn.{p}_proj.{{rest}}" for p in "qkv"),
)

#: transformers CLIP keys with no counterpart in a UniFormerV2 backbone: the text tower, the
#: projections to the joint space, the temperature and the position-id buffer.
HF_CLIP_IGNORE = re.compile(
    r"^(text_model\.|text_projection\.|visual_projection\.|logit_scale$|vision_model\.embeddings\.position_ids$)"
)


def _compile(pattern: str) -> re.Pattern[str]:
    regex = re.escape(pattern).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{rest\}", r"(?P<rest>.+)")
    return re.compile(f"^{regex}$")


def _convert_key(key: str, rules: Iterable[tuple[str, str]]) -> str | None:
    for source, target in rules:
        match = _compile(source).match(key)
        if match:
            return target.format(**match.groupdict())
    return None


def fuse(
    state_dict: Mapping[str, torch.Tensor], rule: tuple[str, tuple[str, ...]], source: str = "checkpoint"
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Concatenate (along dim 0) the keys matching the parts of ``rule`` into its target key.

    Returns:
        ``(fused, rest)``: the concatenated tensors under their new keys, and every other key.

    Raises:
        CheckpointError: a group with some of its parts missing (naming the missing keys).
    """
    target, parts = rule
    patterns = [_compile(p) for p in parts]
    groups: dict[tuple[tuple[str, str], ...], dict[int, torch.Tensor]] = {}
    rest: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for index, pattern in enumerate(patterns):
            match = pattern.match(key)
            if match:
                groups.setdefault(tuple(sorted(match.groupdict().items())), {})[index] = value
                break
        else:
            rest[key] = value
    fused: dict[str, torch.Tensor] = {}
    for names, found in groups.items():
        values = dict(names)
        missing = [parts[i].format(**values) for i in range(len(parts)) if i not in found]
        if missing:
            raise CheckpointError(f"{source}: {', '.join(missing)} missing (needed to build {target.format(**values)})")
        fused[target.format(**values)] = torch.cat([found[i] for i in range(len(parts))])
    return fused, rest


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
