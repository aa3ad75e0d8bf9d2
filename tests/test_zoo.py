"""Consistency of the pretrained registry and the `uniformerv2 zoo` command."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from uniformerv2.cli.main import main
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.zoo import (
    DEFAULT_MODEL,
    PretrainedCfg,
    WeightSource,
    get_pretrained_cfg,
    list_pretrained,
    load_labels,
    register_pretrained,
)
from uniformerv2.zoo.labels import list_label_sets
from uniformerv2.zoo.pretrained import ARCHITECTURES, UnknownPretrainedError, unregister_pretrained

ALL = list_pretrained()
OFFICIAL = [n for n in ALL if n.startswith("uniformerv2-") and not n.endswith("-mmaction2")]
MMACTION2 = [n for n in ALL if n.endswith("-mmaction2")]

#: Official run.sh test views (clips, crops) per dataset token; frozen models use 3x1.
OFFICIAL_VIEWS = {
    "k400": (4, 3),
    "k600": (4, 3),
    "k700": (4, 3),
    "k710": (4, 3),
    "mit": (4, 3),
    "sthv1": (1, 3),
    "sthv2": (1, 3),
    "anet": (10, 3),
    "hacs": (10, 3),
}
#: Official zoo size per dataset token.
OFFICIAL_COUNTS = {
    "k710": 4,
    "k400": 10,
    "k600": 10,
    "k700": 10,
    "mit": 3,
    "sthv1": 4,
    "sthv2": 4,
    "anet": 2,
    "hacs": 2,
}


def _dataset(name: str) -> str:
    return name.split("-")[2]


def test_registry_size() -> None:
    assert len(OFFICIAL) == 49
    assert len(MMACTION2) == 23
    assert {"clip-vit-b16", "clip-vit-l14", "clip-vit-l14-336"} <= set(ALL)
    assert len(ALL) == len(set(ALL)) == 75
    for token, count in OFFICIAL_COUNTS.items():
        assert sum(_dataset(n) == token for n in OFFICIAL) == count, token


@pytest.mark.parametrize("name", ALL)
def test_entry_is_consistent(name: str) -> None:
    cfg = get_pretrained_cfg(name)
    assert cfg.name == name
    assert cfg.arch in ARCHITECTURES
    assert cfg.sources
    assert cfg.checkpoint_format in ("official", "mmaction2", "clip")
    assert cfg.preprocess.crop_size == (336 if "336" in cfg.arch else 224)
    assert cfg.preprocess.mean == (0.45, 0.45, 0.45) and cfg.preprocess.std == (0.225, 0.225, 0.225)
    assert cfg.preprocess.sampling == "segment" and cfg.preprocess.one_based is False
    if cfg.labels is not None:
        assert cfg.labels in list_label_sets()
        assert len(load_labels(cfg.labels)) == cfg.num_classes
    if cfg.top1 is not None:
        assert 30 < cfg.top1 < 100


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_entries_follow_the_official_table(name: str) -> None:
    cfg = get_pretrained_cfg(name)
    frames, res = name.split("-")[-2 if name.endswith("-frozen") else -1].split("x")
    assert (cfg.preprocess.num_frames, cfg.preprocess.crop_size) == (int(frames), int(res))
    assert cfg.checkpoint_format == "official"
    assert cfg.sources[-1].url.startswith("https://pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com/uniformerv2/")
    assert "dead" in cfg.sources[-1].status
    if name.endswith("-frozen"):
        assert cfg.arch == "uniformerv2_l14_336_frozen" and cfg.views == (3, 1)
    else:
        assert cfg.views == OFFICIAL_VIEWS[_dataset(name)]


@pytest.mark.parametrize("name", [n for n in OFFICIAL if "-sthv" in n])
def test_something_something_entries(name: str) -> None:
    cfg = get_pretrained_cfg(name)
    assert cfg.arch.endswith("_ssv2") and cfg.num_classes == 174
    assert cfg.preprocess.channel_order == "BGR"
    assert cfg.views == (1, 3)
    assert cfg.preprocess.sampling == "segment" and cfg.preprocess.one_based is False


def test_only_something_something_is_bgr() -> None:
    bgr = {n for n in ALL if get_pretrained_cfg(n).preprocess.channel_order == "BGR"}
    assert bgr == {n for n in OFFICIAL if "-sthv" in n}


@pytest.mark.parametrize("name", MMACTION2)
def test_mmaction2_entries(name: str) -> None:
    cfg = get_pretrained_cfg(name)
    assert cfg.checkpoint_format == "mmaction2"
    assert cfg.sources[0].url.startswith("https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/")
    assert cfg.sources[0].sha256 and len(cfg.sources[0].sha256) == 8
    assert cfg.sources[0].filename.endswith(f"-{cfg.sources[0].sha256}.pth")
    expected_labels = {
        "k400": "kinetics400_alphabetical",
        "k600": "kinetics600_alphabetical",
        "k700": "kinetics700_alphabetical",
        "k710": "kinetics710_mmaction2",
        "mit": "mit",
    }
    assert cfg.labels == expected_labels[_dataset(name)]
    official = get_pretrained_cfg(name.removesuffix("-mmaction2"))
    assert (cfg.arch, cfg.num_classes, cfg.preprocess.num_frames) == (
        official.arch,
        official.num_classes,
        official.preprocess.num_frames,
    )


def test_label_orders_of_kinetics_heads() -> None:
    assert get_pretrained_cfg(DEFAULT_MODEL).label_names()[0] == "riding a bike"
    assert get_pretrained_cfg(DEFAULT_MODEL + "-mmaction2").label_names()[0] == "abseiling"
    assert get_pretrained_cfg("uniformerv2-b16-k710-8x224").labels == "kinetics710_official"
    assert get_pretrained_cfg("uniformerv2-b16-k600-k710-8x224").label_names() is None


def test_mmaction2_k700_l14_336_uses_the_corrected_url() -> None:
    cfg = get_pretrained_cfg("uniformerv2-l14-k700-k710-32x336-mmaction2")
    assert cfg.sources[0].sha256 == "95cf9046"
    assert cfg.views == (2, 3)


def test_default_model_prefers_the_authors_hub_file() -> None:
    cfg = get_pretrained_cfg(DEFAULT_MODEL)
    assert cfg.arch == "uniformerv2_b16" and cfg.num_classes == 400 and cfg.labels == "kinetics400"
    assert (cfg.sources[0].kind, cfg.sources[0].repo_id, cfg.sources[0].filename) == (
        "hf",
        "Andy1621/uniformerv2",
        "k400+k710_uniformerv2_b16_8x224.pyth",
    )
    mit = get_pretrained_cfg("uniformerv2-b16-mit-8x224")
    assert mit.sources[0].filename == "mit_uniformerv2_b16_8x224.pyth" and mit.sources[0].kind == "hf"


@pytest.mark.parametrize(
    ("name", "arch", "res"),
    [
        ("clip-vit-b16", "uniformerv2_b16", 224),
        ("clip-vit-l14", "uniformerv2_l14", 224),
        ("clip-vit-l14-336", "uniformerv2_l14_336", 336),
    ],
)
def test_clip_encoders(name: str, arch: str, res: int) -> None:
    cfg = get_pretrained_cfg(name)
    assert (cfg.arch, cfg.preprocess.crop_size, cfg.num_classes, cfg.labels) == (arch, res, 0, None)
    hub, openai, mmaction2 = cfg.sources
    assert hub.kind == "hf" and hub.repo_id.startswith("openai/clip-vit-")
    assert openai.url.startswith("https://openaipublic.azureedge.net/clip/models/")
    assert len(openai.sha256) == 64 and openai.sha256 in openai.url
    assert "clipVisualEncoder" in mmaction2.url


def test_get_returns_a_copy() -> None:
    get_pretrained_cfg(DEFAULT_MODEL).preprocess.num_frames = 99
    assert get_pretrained_cfg(DEFAULT_MODEL).preprocess.num_frames == 8


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(KeyError) as info:
        get_pretrained_cfg("uniformerv2-b16-k400-k710-8x24")
    assert isinstance(info.value, UnknownPretrainedError)
    assert "did you mean uniformerv2-b16-k400-k710-8x224" in str(info.value)


def test_list_filters() -> None:
    assert list_pretrained("sthv2") == [n for n in ALL if "sthv2" in n]
    assert list_pretrained("*L14*K400*FROZEN") == [
        "uniformerv2-l14-k400-8x336-frozen",
        "uniformerv2-l14-k400-k710-8x336-frozen",
        "uniformerv2-l14-k400-k710-32x336-frozen",
    ]
    assert list_pretrained("no-such-thing") == []


def test_register_user_entry(tmp_path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("yes\nno\n")
    cfg = PretrainedCfg(
        name="my-finetune",
        arch="uniformerv2_b16",
        num_classes=2,
        labels=str(labels),
        preprocess=PreprocessConfig(),
        sources=(WeightSource("url", url="https://x/y.pth"),),
    )
    register_pretrained(cfg)
    try:
        assert "my-finetune" in list_pretrained()
        assert get_pretrained_cfg("my-finetune").label_names() == ["yes", "no"]
        with pytest.raises(ValueError, match="already registered"):
            register_pretrained(cfg)
        register_pretrained(dataclasses.replace(cfg, num_classes=3), overwrite=True)
        with pytest.raises(ValueError, match="labels.txt"):
            get_pretrained_cfg("my-finetune").label_names()
    finally:
        unregister_pretrained("my-finetune")


def test_invalid_entries_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown arch"):
        PretrainedCfg(name="x", arch="resnet50", num_classes=1, labels=None, preprocess=PreprocessConfig())
    with pytest.raises(ValueError):
        WeightSource("hf", repo_id="a/b")
    with pytest.raises(ValueError):
        WeightSource("url", url="https://x/y.pth", sha256="XYZ")


def test_cli_json_lists_default_model(capsys) -> None:
    assert main(["zoo", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert len(entries) == len(ALL)
    default = next(e for e in entries if e["name"] == DEFAULT_MODEL)
    assert default["preprocess"]["num_frames"] == 8 and default["sources"][0]["kind"] == "hf"


def test_cli_table_with_filter(capsys) -> None:
    assert main(["zoo", "sthv2-16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "arch", "frames", "classes", "labels", "views", "top1", "sources"]
    assert len(lines) == 3
    assert "1x3" in lines[1] and "url(dead)" in lines[1]


def test_cli_no_match(capsys) -> None:
    assert main(["zoo", "nothing-like-this"]) == 1
    assert "no checkpoint matches" in capsys.readouterr().out


def test_model_zoo_doc_is_up_to_date() -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "gen_model_zoo_doc.py"
    spec = importlib.util.spec_from_file_location("gen_model_zoo_doc", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run: python scripts/gen_model_zoo_doc.py"
