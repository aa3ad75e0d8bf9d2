"""Registry of released UniFormerV2 weights: what each file is, how to feed it, and where to get it.

Naming scheme (derived mechanically from the official file names)::

    uniformerv2-{b16|l14}-{dataset}[-k710]-{frames}x{resolution}[-frozen][-mmaction2]

* ``dataset`` is the data the head was trained on: ``k400``, ``k600``, ``k700``, ``k710``, ``mit``,
  ``sthv1``, ``sthv2``, ``anet``, ``hacs``.
* ``-k710`` marks a Kinetics model fine-tuned from the K710 checkpoint (official ``k400_k710_...``);
  without it the model was trained from CLIP directly. MiT/ActivityNet/HACS models always start
  from the K400+K710 model and carry no extra token.
* ``-frozen`` is the frozen-backbone L/14@336 family; ``-mmaction2`` is MMAction2's file, whose head
  uses alphabetical label order (``labels`` says which list applies).
* ``clip-vit-{b16|l14|l14-336}`` are the CLIP image encoders used to start training.

Example: ``uniformerv2-b16-k400-k710-8x224`` is the official ``k400_k710_uniformerv2_b16_8x224.pyth``.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote, urlparse

from uniformerv2.errors import UniFormerV2Error
from uniformerv2.model.variants import list_variants
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.zoo.labels import list_label_sets, load_labels, read_label_file

#: The checkpoint used when none is named.
DEFAULT_MODEL = "uniformerv2-b16-k400-k710-8x224"

#: Architecture names a zoo entry may use: the variant registry (:mod:`uniformerv2.model.variants`).
ARCHITECTURES = tuple(list_variants())

CheckpointFormat = Literal["official", "mmaction2", "clip"]

_ALIYUN = "https://pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com/uniformerv2/"
_ALIYUN_STATUS = "reported dead (404 since 2026-08)"
_MMACTION2 = "https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/"
_HF_REPO = "Andy1621/uniformerv2"
_OPENAI_CLIP = "https://openaipublic.azureedge.net/clip/models/"


@dataclass(frozen=True)
class WeightSource:
    """One place a checkpoint file can be downloaded from.

    Attributes:
        kind: ``"hf"`` (Hugging Face Hub file) or ``"url"`` (plain HTTP(S) download).
        url: download URL, for ``kind="url"``.
        repo_id: Hub repository, for ``kind="hf"``.
        filename: file name in the Hub repository; for URLs it defaults to the URL's last path part
            and is the name the file gets in the cache.
        revision: Hub revision (branch, tag or commit); ``None`` is the default branch.
        sha256: full SHA-256 hex digest or a prefix of it (at least 8 hex digits), if known.
        status: known availability, e.g. ``"reported dead (404 since 2026-08)"``; empty if none.
        local_name: name of the file in the weight cache (where it is looked for and where a person
            places it by hand); defaults to ``filename``. Needed when the file name is generic
            (``model.safetensors``).
    """

    kind: Literal["hf", "url"]
    url: str | None = None
    repo_id: str | None = None
    filename: str | None = None
    revision: str | None = None
    sha256: str | None = None
    status: str = ""
    local_name: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "url":
            if not self.url:
                raise ValueError("a 'url' WeightSource needs url=")
            if self.filename is None:
                object.__setattr__(self, "filename", unquote(os.path.basename(urlparse(self.url).path)))
        elif self.kind == "hf":
            if not (self.repo_id and self.filename):
                raise ValueError("an 'hf' WeightSource needs repo_id= and filename=")
        else:
            raise ValueError(f"WeightSource kind must be 'hf' or 'url', got {self.kind!r}")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{8,64}", self.sha256):
            raise ValueError(f"sha256 must be 8 to 64 lower-case hex digits, got {self.sha256!r}")

    @property
    def cache_name(self) -> str:
        """The file's name in the weight cache directory."""
        return self.local_name or str(self.filename)

    @property
    def location(self) -> str:
        """A URL a person can open to get the file."""
        if self.kind == "url":
            return str(self.url)
        return f"https://huggingface.co/{self.repo_id}/resolve/{self.revision or 'main'}/{quote(str(self.filename))}"


@dataclass
class PretrainedCfg:
    """Everything needed to build, load and feed one released checkpoint.

    Attributes:
        name: registry name (see the module docstring for the scheme).
        arch: architecture variant, one of :data:`ARCHITECTURES`.
        num_classes: rows of the classifier head; 0 for CLIP encoders, which have none.
        labels: label-set name (:func:`uniformerv2.zoo.load_labels`) or a path to a label file, in
            the order of this file's head; ``None`` when the order is not known.
        preprocess: input pipeline, including the default test views (clips x crops).
        dataset: data the head was trained on, in words.
        top1: top-1 accuracy (%) reported by the publisher of this file; ``None`` if none.
        top5: top-5 accuracy (%) reported by the publisher of this file; ``None`` if none.
        pretraining: what the weights started from, e.g. ``"CLIP-400M+K710"``.
        license: licence of the weights.
        checkpoint_format: ``"official"`` (flat ``backbone.*`` state dict), ``"mmaction2"``
            (``state_dict`` with ``backbone.*`` and ``cls_head.*``) or ``"clip"`` (CLIP image encoder).
        sources: where the file can be downloaded, tried in order.
        notes: provenance and caveats.
    """

    name: str
    arch: str
    num_classes: int
    labels: str | None
    preprocess: PreprocessConfig
    dataset: str = ""
    top1: float | None = None
    top5: float | None = None
    pretraining: str = ""
    license: str = ""
    checkpoint_format: CheckpointFormat = "official"
    sources: tuple[WeightSource, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        self.sources = tuple(self.sources)
        if self.arch not in list_variants():
            raise ValueError(f"{self.name}: unknown arch {self.arch!r}; known: {', '.join(list_variants())}")
        if self.checkpoint_format not in ("official", "mmaction2", "clip"):
            raise ValueError(f"{self.name}: checkpoint_format must be official, mmaction2 or clip")

    @property
    def views(self) -> tuple[int, int]:
        """Default test views as ``(clips, crops)``."""
        return self.preprocess.num_clips, self.preprocess.num_crops

    def label_names(self) -> list[str] | None:
        """Class names in head order, or ``None`` when the order is not known."""
        if self.labels is None:
            return None
        if self.labels in list_label_sets():
            return load_labels(self.labels)
        return read_label_file(self.labels, expected=self.num_classes)


class UnknownPretrainedError(KeyError, UniFormerV2Error):
    """A checkpoint name is not in the registry; the message suggests close names."""

    def __str__(self) -> str:
        return str(self.args[0])


_REGISTRY: dict[str, PretrainedCfg] = {}


def register_pretrained(cfg: PretrainedCfg, *, overwrite: bool = False) -> None:
    """Add a checkpoint to the registry (also for users' own files).

    Args:
        cfg: the entry; ``cfg.name`` becomes its key.
        overwrite: replace an existing entry of the same name instead of raising.

    Raises:
        ValueError: the name is taken and ``overwrite`` is False, or the entry has no source.
    """
    if cfg.name in _REGISTRY and not overwrite:
        raise ValueError(f"pretrained name {cfg.name!r} is already registered")
    if not cfg.sources:
        raise ValueError(f"{cfg.name}: a pretrained entry needs at least one source")
    _REGISTRY[cfg.name] = cfg


def unregister_pretrained(name: str) -> None:
    """Remove an entry added with :func:`register_pretrained`; unknown names are ignored."""
    _REGISTRY.pop(name, None)


def list_pretrained(filter: str | None = None) -> list[str]:  # noqa: A002 (timm-compatible name)
    """Registered checkpoint names, in registry order (grouped by dataset).

    Args:
        filter: case-insensitive shell pattern (``"*l14*k400*"``) or, without wildcards, a
            substring (``"sthv2"``); ``None`` lists everything.
    """
    if not filter:
        return list(_REGISTRY)
    pattern = filter.lower() if any(c in filter for c in "*?[") else f"*{filter.lower()}*"
    return [name for name in _REGISTRY if fnmatch.fnmatchcase(name.lower(), pattern)]


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """Look up a checkpoint by name.

    Returns:
        A copy of the entry, safe to modify.

    Raises:
        UnknownPretrainedError: (a ``KeyError``) the name is unknown; the message lists close names.
    """
    try:
        return copy.deepcopy(_REGISTRY[name])
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `uniformerv2 zoo` for the list"
        raise UnknownPretrainedError(f"unknown pretrained model {name!r}{hint}") from None


# --------------------------------------------------------------------------------------------------
# Official UniFormerV2 MODEL_ZOO (OpenGVLab), 48 files.

#: dataset token -> (description, classes, label set, URL folder)
_DATASETS: dict[str, tuple[str, int, str | None, str]] = {
    "k400": ("Kinetics-400", 400, "kinetics400", "k400"),
    "k600": ("Kinetics-600", 600, None, "k600"),
    "k700": ("Kinetics-700", 700, None, "k700"),
    "k710": ("Kinetics-710", 710, "kinetics710_official", "k710"),
    "mit": ("Moments in Time v1", 339, "mit", "mitv1"),
    "sthv1": ("Something-Something v1", 174, "sthv1", "sthv1"),
    "sthv2": ("Something-Something v2", 174, "sthv2", "sthv2"),
    "anet": ("ActivityNet v1.3", 200, "activitynet", "anet"),
    "hacs": ("HACS Clips", 200, "activitynet", "hacs"),
}

#: Official files that the authors also host on the Hugging Face Hub (``+`` spelling).
_HF_MIRRORED = {
    "k400_k710_uniformerv2_b16_8x224": "k400+k710_uniformerv2_b16_8x224.pyth",
    "mit_uniformerv2_b16_8x224": "mit_uniformerv2_b16_8x224.pyth",
}

_OFFICIAL_NAME = re.compile(
    r"^(?P<frozen>frozen_)?(?P<data>[a-z0-9]+?)(?P<k710>_k710)?_uniformerv2_(?P<arch>b16|l14)_(?P<t>\d+)x(?P<res>\d+)$"
)

_NOTE_UNKNOWN_ORDER = (
    "Official K600/K700 label order was published only on the authors' Google Drive and is not shipped "
    "(labels=None); the -mmaction2 entries carry alphabetical heads."
)
_NOTE_TWO_CLIPS = "MODEL_ZOO lists 2 clips; the official run.sh tests 4x3 views, used here."
_NOTE_FROZEN_32 = "MODEL_ZOO lists 32x3x4; the official run.sh tests 3x1 views, used here."
_NOTE_BGR = (
    "Trained on BGR frames (OpenCV decoding); one_based stays False for video files and applies only to "
    "1-based JPEG frame folders."
)
_NOTE_ANET = "Label order assumed to be the ActivityNet v1.3 list shipped as 'activitynet' (not verified)."


def _official(stem: str, top1: float | None, pretraining: str, notes: str = "") -> PretrainedCfg:
    """Entry for an official ``.pyth`` file, all fields derived from its file name."""
    m = _OFFICIAL_NAME.match(stem)
    if m is None:
        raise ValueError(f"not an official file name: {stem}")
    data, frozen, res = m["data"], bool(m["frozen"]), int(m["res"])
    dataset, classes, labels, folder = _DATASETS[data]
    ssv = data.startswith("sth")
    if frozen:
        arch, views = "uniformerv2_l14_336_frozen", (3, 1)
    elif ssv:
        arch, views = f"uniformerv2_{m['arch']}_ssv2", (1, 3)
    else:
        arch = f"uniformerv2_{m['arch']}" + ("_336" if res == 336 else "")
        views = (10, 3) if data in ("anet", "hacs") else (4, 3)
    name = f"uniformerv2-{m['arch']}-{data}{'-k710' if m['k710'] else ''}-{m['t']}x{res}{'-frozen' if frozen else ''}"
    sources = [WeightSource("url", url=f"{_ALIYUN}{folder}/{stem}.pyth", status=_ALIYUN_STATUS)]
    if stem in _HF_MIRRORED:
        sources.insert(0, WeightSource("hf", repo_id=_HF_REPO, filename=_HF_MIRRORED[stem]))
    extra = [notes, _NOTE_BGR if ssv else "", _NOTE_ANET if labels == "activitynet" else ""]
    extra.append(_NOTE_UNKNOWN_ORDER if labels is None else "")
    return PretrainedCfg(
        name=name,
        arch=arch,
        num_classes=classes,
        labels=labels,
        preprocess=PreprocessConfig(
            num_frames=int(m["t"]),
            crop_size=res,
            channel_order="BGR" if ssv else "RGB",
            num_clips=views[0],
            num_crops=views[1],
        ),
        dataset=dataset,
        top1=top1,
        pretraining=pretraining,
        license="MIT",
        checkpoint_format="official",
        sources=tuple(sources),
        notes=" ".join(n for n in extra if n),
    )


_C, _CK, _CKK = "CLIP-400M", "CLIP-400M+K710", "CLIP-400M+K710+K400"

_OFFICIAL_ZOO: list[tuple[str, float | None, str, str]] = [
    ("k710_uniformerv2_b16_8x224", None, _C, ""),
    ("k710_uniformerv2_l14_8x224", None, _C, ""),
    ("k710_uniformerv2_l14_8x336", None, _C, ""),
    ("frozen_k710_uniformerv2_l14_8x336", None, _C, ""),
    ("k400_uniformerv2_b16_8x224", 84.4, _C, ""),
    ("k400_k710_uniformerv2_b16_8x224", 85.6, _CK, ""),
    ("k400_k710_uniformerv2_l14_8x224", 88.8, _CK, ""),
    ("k400_k710_uniformerv2_l14_16x224", 89.1, _CK, ""),
    ("k400_k710_uniformerv2_l14_32x224", 89.3, _CK, _NOTE_TWO_CLIPS),
    ("k400_k710_uniformerv2_l14_32x336", 89.7, _CK, _NOTE_TWO_CLIPS),
    ("k400_k710_uniformerv2_l14_64x336", 90.0, _CK, _NOTE_TWO_CLIPS),
    ("frozen_k400_uniformerv2_l14_8x336", 86.7, _C, ""),
    ("frozen_k400_k710_uniformerv2_l14_8x336", 87.8, _CK, ""),
    ("frozen_k400_k710_uniformerv2_l14_32x336", 88.9, _CK, _NOTE_FROZEN_32),
    ("k600_uniformerv2_b16_8x224", 85.0, _C, ""),
    ("k600_k710_uniformerv2_b16_8x224", 86.1, _CK, ""),
    ("k600_k710_uniformerv2_l14_8x224", 89.0, _CK, ""),
    ("k600_k710_uniformerv2_l14_16x224", 89.4, _CK, ""),
    ("k600_k710_uniformerv2_l14_32x224", 89.5, _CK, _NOTE_TWO_CLIPS),
    ("k600_k710_uniformerv2_l14_32x336", 89.9, _CK, _NOTE_TWO_CLIPS),
    ("k600_k710_uniformerv2_l14_64x336", 90.1, _CK, _NOTE_TWO_CLIPS),
    ("frozen_k600_uniformerv2_l14_8x336", 87.4, _C, ""),
    ("frozen_k600_k710_uniformerv2_l14_8x336", 88.2, _CK, ""),
    ("frozen_k600_k710_uniformerv2_l14_32x336", 89.2, _CK, _NOTE_FROZEN_32),
    ("k700_uniformerv2_b16_8x224", 75.8, _C, ""),
    ("k700_k710_uniformerv2_b16_8x224", 76.3, _CK, ""),
    ("k700_k710_uniformerv2_l14_8x224", 80.8, _CK, ""),
    ("k700_k710_uniformerv2_l14_16x224", 81.2, _CK, ""),
    ("k700_k710_uniformerv2_l14_32x224", 81.5, _CK, _NOTE_TWO_CLIPS),
    ("k700_k710_uniformerv2_l14_32x336", 82.1, _CK, _NOTE_TWO_CLIPS),
    ("k700_k710_uniformerv2_l14_64x336", 82.7, _CK, _NOTE_TWO_CLIPS),
    ("frozen_k700_uniformerv2_l14_8x336", 79.6, _C, ""),
    ("frozen_k700_k710_uniformerv2_l14_8x336", 79.7, _CK, ""),
    ("frozen_k700_k710_uniformerv2_l14_32x336", 80.8, _CK, _NOTE_FROZEN_32),
    ("mit_uniformerv2_b16_8x224", 42.6, _CKK, ""),
    ("mit_uniformerv2_l14_8x224", 47.0, _CKK, ""),
    ("mit_uniformerv2_l14_8x336", 47.8, _CKK, ""),
    ("sthv1_uniformerv2_b16_16x224", 56.8, _C, ""),
    ("sthv1_uniformerv2_b16_32x224", 59.4, _C, ""),
    ("sthv1_uniformerv2_l14_16x224", 60.5, _C, ""),
    ("sthv1_uniformerv2_l14_32x224", 62.7, _C, ""),
    ("sthv2_uniformerv2_b16_16x224", 69.5, _C, ""),
    ("sthv2_uniformerv2_b16_32x224", 70.7, _C, ""),
    ("sthv2_uniformerv2_l14_16x224", 72.1, _C, ""),
    ("sthv2_uniformerv2_l14_32x224", 73.0, _C, ""),
    ("anet_uniformerv2_l14_16x224", 94.3, _CKK, ""),
    ("anet_uniformerv2_l14_32x224", 94.7, _CKK, ""),
    ("hacs_uniformerv2_l14_16x224", 95.5, _CKK, ""),
    ("hacs_uniformerv2_l14_32x224", 95.4, _CKK, ""),
]

# --------------------------------------------------------------------------------------------------
# MMAction2 1.2.0 files (download.openmmlab.com): alphabetical Kinetics heads, 8-hex sha256 prefix
# in the file name.

_MM_LABELS = {
    "k400": "kinetics400_alphabetical",
    "k600": "kinetics600_alphabetical",
    "k700": "kinetics700_alphabetical",
    "k710": "kinetics710_mmaction2",
    "mit": "mit",
}
_MM_RETRAINED = "Re-trained in MMAction2 (not converted from the official file); top-1 on MMAction2's data."
_MM_CONVERTED = "Converted by MMAction2 from the official file, head rows permuted to alphabetical order."
_MM_METAFILE_STATUS = "probably dead (metafile URL without the sub-folder; unchecked)"
_MM_K710 = "MMAction2's 2023-06 re-export: K710 head in MMAction2's order (K400 classes alphabetical first)."


def _mmaction2(
    path: str,
    official: str,
    top1: float | None,
    top5: float | None,
    pretraining: str,
    notes: str,
    clips: int = 4,
    extra_urls: tuple[str, ...] = (),
) -> PretrainedCfg:
    """Entry for an MMAction2 file; ``official`` is the name of the matching official entry."""
    base = _REGISTRY[official]
    data = official.split("-")[2]
    sources = (WeightSource("url", url=_MMACTION2 + path, sha256=_mm_hash(path)),) + tuple(
        WeightSource("url", url=_MMACTION2 + p, sha256=_mm_hash(p), status=_MM_METAFILE_STATUS) for p in extra_urls
    )
    return PretrainedCfg(
        name=f"{official}-mmaction2",
        arch=base.arch,
        num_classes=base.num_classes,
        labels=_MM_LABELS[data],
        preprocess=PreprocessConfig(
            num_frames=base.preprocess.num_frames, crop_size=base.preprocess.crop_size, num_clips=clips
        ),
        dataset=base.dataset,
        top1=top1,
        top5=top5,
        pretraining=pretraining,
        license="Apache-2.0",
        checkpoint_format="mmaction2",
        sources=sources,
        notes=notes,
    )


def _mm_hash(path: str) -> str:
    match = re.search(r"-([0-9a-f]{8})\.pth$", path)
    if match is None:
        raise ValueError(f"MMAction2 file name without hash: {path}")
    return match[1]


_B16_K400_CLIP = "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb"
_B16_K710 = "uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics{}-rgb"
_B16_K700_CLIP = "uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics700-rgb"
_B16_MIT = "uniformerv2-base-p16-res224_clip-kinetics710-kinetics-k400-pre_16xb32-u8_mitv1-rgb"
_B16_K710_CLIP = "uniformerv2-base-p16-res224_clip-pre_u8_kinetics710-rgb"
_L = "kinetics{k}/uniformerv2-large-p14-res{r}_clip-kinetics710-pre_u{t}_kinetics{k}-rgb_20221219-{h}.pth"


def _mm_dir(stem: str, date_hash: str) -> str:
    return f"{stem}/{stem}_{date_hash}.pth"


_MMACTION2_ZOO: list[tuple] = [
    (_mm_dir(_B16_K400_CLIP, "20230313-e29fc968"), "uniformerv2-b16-k400-8x224", 84.4, 96.3, _C, _MM_RETRAINED),
    (
        _mm_dir(_B16_K710.format(400), "20230313-75be0806"),
        "uniformerv2-b16-k400-k710-8x224",
        85.8,
        97.1,
        _CK,
        _MM_RETRAINED,
    ),
    (_L.format(k=400, r=224, t=8, h="972ea063"), "uniformerv2-l14-k400-k710-8x224", 88.7, 98.1, _CK, _MM_CONVERTED),
    (_L.format(k=400, r=224, t=16, h="6dc86d05"), "uniformerv2-l14-k400-k710-16x224", 89.0, 98.2, _CK, _MM_CONVERTED),
    (_L.format(k=400, r=224, t=32, h="56a46f64"), "uniformerv2-l14-k400-k710-32x224", 89.3, 98.2, _CK, _MM_CONVERTED),
    (
        _L.format(k=400, r=336, t=32, h="1dd7650f"),
        "uniformerv2-l14-k400-k710-32x336",
        89.5,
        98.4,
        _CK,
        _MM_CONVERTED,
        2,
    ),
    (
        _mm_dir(_B16_K710.format(600), "20230313-544f06f0"),
        "uniformerv2-b16-k600-k710-8x224",
        86.4,
        97.3,
        _CK,
        _MM_RETRAINED,
    ),
    (_L.format(k=600, r=224, t=8, h="cf88e4c2"), "uniformerv2-l14-k600-k710-8x224", 89.0, 98.3, _CK, _MM_CONVERTED),
    (_L.format(k=600, r=224, t=16, h="38ff0e3e"), "uniformerv2-l14-k600-k710-16x224", 89.4, 98.3, _CK, _MM_CONVERTED),
    (_L.format(k=600, r=224, t=32, h="d450d071"), "uniformerv2-l14-k600-k710-32x224", 89.2, 98.3, _CK, _MM_CONVERTED),
    (
        _L.format(k=600, r=336, t=32, h="f984f5d2"),
        "uniformerv2-l14-k600-k710-32x336",
        89.8,
        98.5,
        _CK,
        _MM_CONVERTED,
        2,
    ),
    (_mm_dir(_B16_K700_CLIP, "20230313-f02e48ad"), "uniformerv2-b16-k700-8x224", 75.9, 92.9, _C, _MM_RETRAINED),
    (
        _mm_dir(_B16_K710.format(700), "20230313-69070837"),
        "uniformerv2-b16-k700-k710-8x224",
        76.3,
        92.9,
        _CK,
        _MM_RETRAINED,
    ),
    (_L.format(k=700, r=224, t=8, h="bfb9f401"), "uniformerv2-l14-k700-k710-8x224", 80.8, 95.2, _CK, _MM_CONVERTED),
    (_L.format(k=700, r=224, t=16, h="745209d2"), "uniformerv2-l14-k700-k710-16x224", 81.2, 95.6, _CK, _MM_CONVERTED),
    (_L.format(k=700, r=224, t=32, h="eebe7056"), "uniformerv2-l14-k700-k710-32x224", 81.4, 95.7, _CK, _MM_CONVERTED),
    (
        _L.format(k=700, r=336, t=32, h="95cf9046"),
        "uniformerv2-l14-k700-k710-32x336",
        82.1,
        96.0,
        _CK,
        _MM_CONVERTED + " MMAction2's metafile lists the L/14 8-frame file (-bfb9f401) for this model by mistake.",
        2,
    ),
    (_mm_dir(_B16_MIT, "20230313-a6f4a567"), "uniformerv2-b16-mit-8x224", 42.3, 71.5, _CKK, _MM_RETRAINED),
    (
        "mitv1/uniformerv2-large-p16-res224_clip-kinetics710-kinetics-k400-pre_u8_mitv1-rgb_20221219-882c0598.pth",
        "uniformerv2-l14-mit-8x224",
        47.0,
        76.1,
        _CKK,
        _MM_CONVERTED + " The file name says p16; the model is L/14.",
    ),
    (
        "mitv1/uniformerv2-large-p16-res336_clip-kinetics710-kinetics-k400-pre_u8_mitv1-rgb_20221219-9020986e.pth",
        "uniformerv2-l14-mit-8x336",
        47.7,
        76.8,
        _CKK,
        _MM_CONVERTED + " The file name says p16; the model is L/14@336.",
    ),
    (
        _mm_dir(_B16_K710_CLIP, "20230612-63cdbad9"),
        "uniformerv2-b16-k710-8x224",
        78.9,
        94.2,
        _C,
        _MM_K710 + " The metafile's URL (second source) lacks the sub-folder.",
        4,
        (f"{_B16_K710_CLIP}_20230612-63cdbad9.pth",),
    ),
    (
        "kinetics710/uniformerv2-large-p14-res224_clip-pre_u8_kinetics710-rgb_20230612-d002a407.pth",
        "uniformerv2-l14-k710-8x224",
        None,
        None,
        _C,
        _MM_K710,
    ),
    (
        "kinetics710/uniformerv2-large-p14-res336_clip-pre_u8_kinetics710-rgb_20230612-d723ddc1.pth",
        "uniformerv2-l14-k710-8x336",
        None,
        None,
        _C,
        _MM_K710,
    ),
]

# --------------------------------------------------------------------------------------------------
# CLIP image encoders (training from CLIP): the Hugging Face transformers files (safetensors) first,
# OpenAI's TorchScript archives second, MMAction2's extracted copies third.

_CLIP_ENCODERS = [
    (
        "clip-vit-b16",
        "uniformerv2_b16",
        224,
        "openai/clip-vit-base-patch16",
        "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
        "clipVisualEncoder/vit-base-p16-res224_clip-rgb_20221219-b8a5da86.pth",
    ),
    (
        "clip-vit-l14",
        "uniformerv2_l14",
        224,
        "openai/clip-vit-large-patch14",
        "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
        "clipVisualEncoder/vit-large-p14-res224_clip-rgb_20221219-9de7543e.pth",
    ),
    (
        "clip-vit-l14-336",
        "uniformerv2_l14_336",
        336,
        "openai/clip-vit-large-patch14-336",
        "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
        "clipVisualEncoder/vit-large-p14-res336_clip-rgb_20221219-d370f9e5.pth",
    ),
]

_NOTE_CLIP = (
    "Image encoder only, no head. First source: the Hugging Face transformers CLIP model (safetensors, "
    "vision_model.* keys, q/k/v fused on load); second: OpenAI's TorchScript archive of the whole CLIP model "
    "(keys visual.*, read without running it); third: MMAction2's extracted encoder (visual. stripped, "
    "proj/ln_post dropped)."
)


def _clip(name: str, arch: str, res: int, hf_repo: str, openai_path: str, mm_path: str) -> PretrainedCfg:
    return PretrainedCfg(
        name=name,
        arch=arch,
        num_classes=0,
        labels=None,
        preprocess=PreprocessConfig(num_frames=8, crop_size=res),
        dataset="WIT-400M (image-text)",
        pretraining="CLIP-400M",
        license="MIT",
        checkpoint_format="clip",
        sources=(
            WeightSource(
                "hf", repo_id=hf_repo, filename="model.safetensors", local_name=hf_repo.split("/")[1] + ".safetensors"
            ),
            WeightSource("url", url=_OPENAI_CLIP + openai_path, sha256=openai_path.split("/")[0]),
            WeightSource("url", url=_MMACTION2 + mm_path, sha256=_mm_hash(mm_path)),
        ),
        notes=_NOTE_CLIP,
    )


def _register_builtin() -> None:
    for stem, top1, pretraining, notes in _OFFICIAL_ZOO:
        register_pretrained(_official(stem, top1, pretraining, notes))
    for row in _MMACTION2_ZOO:
        register_pretrained(_mmaction2(*row))
    for row in _CLIP_ENCODERS:
        register_pretrained(_clip(*row))


_register_builtin()
