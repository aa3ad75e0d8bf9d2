"""`uniformerv2.evaluate` / `uniformerv2 eval`: metrics against a hand computation from `predict`,
label-order checks, failed videos, outputs, resume with fingerprints, and two-rank sharding."""

from __future__ import annotations

import csv
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_LABELS, make_tiny_model, save_mmaction2, save_official, tiny_train_config, write_video
from videogen import write_frame_folder

import uniformerv2
from uniformerv2.cli.main import main
from uniformerv2.evaluation import LabelError, evaluate, read_eval_list
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.weights import save_pretrained
from uniformerv2.zoo import load_label_map, load_labels


def _run(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _videos(folder: Path, count: int) -> list[Path]:
    """``count`` short noise videos of different brightness and size (the tiny model tells them apart)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        height, width = (48, 64) if i % 2 else (64, 48)
        frames = (rng.integers(0, 256, (6 + i, height, width, 3)) * ((i + 1) / count)).astype(np.uint8)
        paths.append(write_video(folder / f"v{i}.mp4", frames))
    return paths


def _probabilities(paths: list[Path], model: object, labels: list[str]) -> np.ndarray:
    """(N, C) view-averaged probabilities from ``uniformerv2.predict``, in head order."""
    out = uniformerv2.predict([str(p) for p in paths], model, top_k=None)
    return np.array([[{d["label"]: d["score"] for d in video}[name] for name in labels] for video in out])


def _by_hand(probs: np.ndarray, truth: list[int]) -> dict:
    """top-1, top-5, mean class accuracy (%) and confusion, computed with plain loops."""
    classes = probs.shape[1]
    confusion = np.zeros((classes, classes), dtype=np.int64)
    hit1 = hit5 = 0
    for p, t in zip(probs, truth, strict=True):
        order = sorted(range(classes), key=lambda c: -p[c])
        confusion[t, order[0]] += 1
        hit1 += order[0] == t
        hit5 += t in order[:5]
    recalls = [confusion[c, c] / confusion[c].sum() for c in range(classes) if confusion[c].sum()]
    return {
        "top1": 100 * hit1 / len(truth),
        "top5": 100 * hit5 / len(truth),
        "mean_class": 100 * sum(recalls) / len(recalls),
        "confusion": confusion,
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An 8-class tiny model directory, 8 videos, and true labels: half the predicted class, half not."""
    root = tmp_path_factory.mktemp("eval")
    model_dir = save_pretrained(make_tiny_model(num_classes=8, seed=3), root / "model8")
    paths = _videos(root, 8)
    labels = [f"LABEL_{i}" for i in range(8)]
    probs = _probabilities(paths, str(model_dir), labels)
    best = probs.argmax(axis=1)
    truth = [int(best[i]) if i % 2 == 0 else int((best[i] + 1 + i) % 8) for i in range(8)]
    lines = ["path,label"] + [f"{p.name},{t}" for p, t in zip(paths, truth, strict=True)]
    (root / "val.csv").write_text("\n".join(lines) + "\n")
    return {"root": root, "model": model_dir, "paths": paths, "probs": probs, "truth": truth}


def test_metrics_equal_a_hand_computation_from_predict(setup) -> None:
    result = evaluate(setup["root"] / "val.csv", str(setup["model"]))
    expected = _by_hand(setup["probs"], setup["truth"])
    assert result.count == result.total == 8
    assert result.top1 == pytest.approx(expected["top1"])
    assert result.top5 == pytest.approx(expected["top5"])
    assert result.mean_class_accuracy == pytest.approx(expected["mean_class"])
    np.testing.assert_array_equal(result.confusion, expected["confusion"])
    assert 0 < result.top1 < 100  # the data set is not degenerate
    for row, probs, truth in zip(result.predictions, setup["probs"], setup["truth"], strict=True):
        assert row["label"] == truth
        assert row["prediction"] == int(probs.argmax())
        assert row["score"] == pytest.approx(float(probs.max()), abs=1e-6)
        assert row["top"] == [int(c) for c in np.argsort(-probs)[:5]]


@pytest.mark.slow  # several command runs
def test_protocol_is_printed_before_the_run_and_outputs_are_written(setup, capsys, tmp_path) -> None:
    out = tmp_path / "report.json"
    code, stdout, err = _run(
        capsys,
        "eval",
        setup["root"] / "val.csv",
        "--model",
        setup["model"],
        "--workers",
        "0",
        "--json",
        out,
        "--predictions",
        tmp_path / "preds.csv",
        "--plot",
        tmp_path / "confusion.png",
    )
    assert code == 0, err
    for words in ("4 frames per clip", "segment sampling", "2 clips x 3 crops", "short side to 32", "mean (0.45"):
        assert words in err
    assert "channel order RGB" in err and "label order" in err and "fingerprint" in err
    report = json.loads(out.read_text())
    expected = _by_hand(setup["probs"], setup["truth"])
    assert report["metrics"]["top1"] == pytest.approx(expected["top1"])
    assert report["confusion"]["matrix"] == expected["confusion"].tolist()
    assert report["protocol"]["views"] == "2x3" and report["protocol"]["channel_order"] == "RGB"
    assert f"top-1 {expected['top1']:.2f}%" in stdout
    rows = list(csv.DictReader((tmp_path / "preds.csv").open()))
    assert [int(r["label"]) for r in rows] == setup["truth"]
    assert [int(r["correct"]) for r in rows] == [int(r["label"] == r["prediction"]) for r in rows]
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_class_names_in_any_order_map_to_the_head(tmp_path) -> None:
    model = make_tiny_model(seed=1)  # 5 classes named TINY_LABELS
    paths = _videos(tmp_path, 4)
    truth = [3, 0, 4, 0]
    (tmp_path / "names.csv").write_text(
        "".join(f"{p.name},{TINY_LABELS[t]}\n" for p, t in zip(paths, truth, strict=True))
    )
    shuffled = [TINY_LABELS[i] for i in (2, 4, 0, 3, 1)]  # the data set's own class order
    (tmp_path / "classes.txt").write_text("\n".join(shuffled) + "\n")
    (tmp_path / "idx.txt").write_text(
        "".join(f"{p.name} {shuffled.index(TINY_LABELS[t])}\n" for p, t in zip(paths, truth, strict=True))
    )
    by_name = evaluate(tmp_path / "names.csv", model)
    by_index = evaluate(tmp_path / "idx.txt", model, labels=tmp_path / "classes.txt")
    assert [p["label"] for p in by_name.predictions] == truth
    assert [p["label"] for p in by_index.predictions] == truth
    assert by_name.top1 == by_index.top1 and by_name.notes == by_index.notes == []
    assert "remapped by name" in by_index.protocol["list_labels"]
    expected = _by_hand(_probabilities(paths, model, TINY_LABELS), truth)
    assert by_name.top1 == pytest.approx(expected["top1"])


def test_top5_is_not_applicable_with_fewer_than_five_classes(tmp_path, capsys) -> None:
    model_dir = save_pretrained(make_tiny_model(num_classes=3), tmp_path / "m3")
    paths = _videos(tmp_path, 3)
    (tmp_path / "l.csv").write_text("".join(f"{p.name},{i}\n" for i, p in enumerate(paths)))
    code, out, err = _run(capsys, "eval", tmp_path / "l.csv", "--model", model_dir, "--json", tmp_path / "r.json")
    assert code == 0, err
    assert "top-5 n/a" in out
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["top5"] is None
    assert evaluate(tmp_path / "l.csv", str(model_dir)).top5 is None


def test_failed_videos_are_listed_counted_and_excluded(setup, tmp_path, capsys) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"not a video" * 50)
    lines = [f"{p},{t}" for p, t in zip(setup["paths"], setup["truth"], strict=True)]
    lines[2:2] = [f"{tmp_path / 'broken.mp4'},1", f"{tmp_path / 'missing.mp4'},2"]
    (tmp_path / "l.csv").write_text("\n".join(lines) + "\n")
    code, out, err = _run(
        capsys, "eval", tmp_path / "l.csv", "--model", setup["model"], "--workers", "0", "--json", tmp_path / "r.json"
    )
    assert code == 1
    assert "2 of 10 videos failed" in err and "8 of 10 videos" in out and "excluded" in out
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "broken.mp4" in errors[0] and "missing.mp4" in errors[1]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["metrics"]["count"] == 8 and report["metrics"]["failed"] == 2
    assert report["metrics"]["top1"] == pytest.approx(_by_hand(setup["probs"], setup["truth"])["top1"])


def test_unknown_class_names_and_bad_lines_are_one_clear_error(setup, tmp_path, capsys) -> None:
    path = setup["paths"][0]
    (tmp_path / "l.csv").write_text(f"{path},bowling\n{path},swimming\n{path},9\n")
    with pytest.raises(LabelError) as info:
        read_eval_list(tmp_path / "l.csv", TINY_LABELS)
    first, *rest = str(info.value).splitlines()
    assert first.startswith(f"{tmp_path / 'l.csv'}:2: class name 'swimming' is not among the checkpoint's 5 classes")
    assert rest == [f"  {tmp_path / 'l.csv'}:3: label 9 is outside [0, 5)"]
    (tmp_path / "l.csv").write_text(f"{path},LABEL_1\n{path},swimming\n")  # the 8-class model has no names
    code, _, err = _run(capsys, "eval", tmp_path / "l.csv", "--model", setup["model"])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {tmp_path / 'l.csv'}:2: class name 'swimming' cannot be matched")


def test_index_labels_are_warned_as_unchecked(setup, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="uniformerv2.evaluation.core"):
        result = evaluate(setup["root"] / "val.csv", str(setup["model"]))
    assert any("cannot be checked" in r.getMessage() for r in caplog.records)
    assert "unchecked" in result.protocol["list_labels"] and result.notes


def test_alphabetical_kinetics_labels_map_onto_the_official_head(tmp_path) -> None:
    official = load_labels("kinetics400")
    alphabetical = load_labels("kinetics400_alphabetical")
    wanted = ["abseiling", "balloon blowing", "riding a bike", "zumba"]
    lines = [f"v{i}.mp4,{alphabetical.index(name)}" for i, name in enumerate(wanted)]
    (tmp_path / "val.csv").write_text("\n".join(lines) + "\n")
    parsed = read_eval_list(tmp_path / "val.csv", official, list_labels=alphabetical)
    expected = [official.index(n) for n in ("abseiling", "inflating balloons", "riding a bike", "zumba")]
    assert [item.label for item in parsed.items] == expected
    assert parsed.checked and "differs from the head's kinetics400 order" in parsed.order
    # the full shipped map agrees with name matching for every class
    rows = load_label_map("kinetics710_official", "kinetics400_alphabetical")
    every = read_eval_list(_index_list(tmp_path, 400), official, list_labels=alphabetical)
    assert [item.label for item in every.items] == rows


def _index_list(folder: Path, count: int) -> Path:
    path = folder / f"all{count}.csv"
    path.write_text("".join(f"v{i}.mp4,{i}\n" for i in range(count)))
    return path


def test_unchecked_alphabetical_indices_on_an_official_head_are_flagged(tmp_path) -> None:
    model = make_tiny_model(num_classes=400)
    model.pretrained_cfg["labels"] = load_labels("kinetics400")
    with torch.no_grad():  # every video is classified as row 0, "riding a bike"
        model.head.fc.bias[0] = 100.0
    alphabetical = load_labels("kinetics400_alphabetical").index("riding a bike")
    paths = _videos(tmp_path, 3)
    (tmp_path / "val.csv").write_text("".join(f"{p.name},{alphabetical}\n" for p in paths))
    result = evaluate(tmp_path / "val.csv", model)
    assert result.top1 == 0.0
    assert any("kinetics400_alphabetical class order: top-1 would be 100.00%" in n for n in result.notes)
    fixed = evaluate(tmp_path / "val.csv", model, labels="kinetics400_alphabetical")
    assert fixed.top1 == 100.0 and fixed.notes == []


def test_frame_folder_lists_match_predict(tmp_path) -> None:
    model = make_tiny_model(seed=2)
    folders = [write_frame_folder(tmp_path / f"clip{i}", 9 + 3 * i) for i in range(2)]
    (tmp_path / "val.txt").write_text("".join(f"clip{i} {9 + 3 * i} {i}\n" for i in range(2)))
    result = evaluate(tmp_path / "val.txt", model)
    expected = _probabilities(folders, model, TINY_LABELS)
    assert [p["prediction"] for p in result.predictions] == list(expected.argmax(axis=1))
    assert result.top1 == pytest.approx(_by_hand(expected, [0, 1])["top1"])


@pytest.mark.slow  # several command runs
def test_resume_skips_done_videos_and_refuses_other_settings(setup, tmp_path, capsys) -> None:
    out = tmp_path / "r.json"
    args = ["eval", setup["root"] / "val.csv", "--model", setup["model"], "--workers", "0", "--json", out]
    assert _run(capsys, *args)[0] == 0
    first = json.loads(out.read_text())
    shard = tmp_path / "r.rank0.jsonl"
    lines = shard.read_text().splitlines()  # a settings header, then one line per video
    shard.write_text("\n".join(lines[:4]) + "\n" + lines[4][:10])  # a run killed while writing video 4
    code, _, err = _run(capsys, *args)
    assert code == 0 and "skipped 3 videos already done" in err
    assert json.loads(out.read_text())["metrics"] == first["metrics"]
    code, _, err = _run(capsys, *args, "--views", "1x1")
    assert code == 2 and "--overwrite" in err
    code, _, err = _run(capsys, *args, "--views", "1x1", "--overwrite")
    assert code == 0, err
    assert json.loads(out.read_text())["protocol"]["views"] == "1x1"
    assert len(shard.read_text().splitlines()) == 1 + 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_ranks_merge_to_the_single_process_metrics(setup, tmp_path, capsys) -> None:
    single = tmp_path / "single.json"
    assert _run(capsys, "eval", setup["root"] / "val.csv", "--model", setup["model"], "--json", single)[0] == 0
    port, procs = _free_port(), []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        cmd = [sys.executable, "-m", "uniformerv2", "eval", str(setup["root"] / "val.csv")]
        cmd += ["--model", str(setup["model"]), "--workers", "0", "--json", str(tmp_path / "ddp.json")]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    shards = sorted(tmp_path.glob("ddp.rank*.jsonl"))
    assert [len(s.read_text().splitlines()) for s in shards] == [5, 5]  # header + videos 0,2,4,6 / 1,3,5,7
    merged, alone = json.loads((tmp_path / "ddp.json").read_text()), json.loads(single.read_text())
    assert merged["metrics"] == alone["metrics"] and merged["confusion"] == alone["confusion"]
    assert [p["video"] for p in merged["predictions"]] == [p["video"] for p in alone["predictions"]]


def test_torchrun_without_an_output_file_is_a_usage_error(setup, capsys, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    code, _, err = _run(capsys, "eval", setup["root"] / "val.csv", "--model", setup["model"])
    assert code == 2 and err.startswith("error: under torchrun, pass an output file")


def test_labels_with_separators_and_the_three_layouts_parse(tmp_path) -> None:
    ssv2 = load_labels("sthv2")
    kinetics = load_labels("kinetics400")
    name = "Laying something on the table on its side, not upright"
    (tmp_path / "ssv2.csv").write_text(f"a,b/v1.webm,{name}\nv2.webm,{ssv2.index(name)}\n")
    (tmp_path / "k400.txt").write_text("# comment\nvid eo.mp4 riding a bike\n\nv.mp4 dying_hair\n")
    (tmp_path / "frames.txt").write_text("12345 37 [Something] falling like a rock\n777 20 3\n")
    items = read_eval_list(tmp_path / "ssv2.csv", ssv2, root="/data").items
    assert [(i.video, i.label) for i in items] == [
        ("/data/a,b/v1.webm", ssv2.index(name)),
        ("/data/v2.webm", ssv2.index(name)),
    ]
    k400 = read_eval_list(tmp_path / "k400.txt", kinetics)
    assert [(Path(i.video).name, i.label) for i in k400.items] == [
        ("vid eo.mp4", kinetics.index("riding a bike")),
        ("v.mp4", kinetics.index("dyeing hair")),
    ]
    assert k400.items[0].where.endswith("k400.txt:2")
    frames = read_eval_list(tmp_path / "frames.txt", ssv2)
    assert [(Path(i.video).name, i.label) for i in frames.items] == [
        ("12345", ssv2.index("Something falling like a rock")),
        ("777", 3),
    ]
    assert frames.kind == "mixed" and frames.notes  # the index line cannot be checked


@pytest.mark.slow  # 224 px views: a file without a config is read with the default pipeline
def test_official_and_mmaction2_files_score_like_the_model_they_hold(tmp_path) -> None:
    model = make_tiny_model(seed=4, heads=1, n_head=1, layers=2, return_list=(0, 1))  # a layout files need not state
    model.pretrained_cfg["preprocess"] = PreprocessConfig()  # what a file without a config is read with
    paths = _videos(tmp_path, 2)
    (tmp_path / "l.csv").write_text("".join(f"{p.name},{i}\n" for i, p in enumerate(paths)))
    reference = evaluate(tmp_path / "l.csv", model, views="1x1")
    for path in (save_official(model, tmp_path / "m.pyth"), save_mmaction2(model, tmp_path / "m.pth")):
        loaded = evaluate(tmp_path / "l.csv", str(path), views="1x1")
        assert [p["top"] for p in loaded.predictions] == [p["top"] for p in reference.predictions]
        assert loaded.top1 == reference.top1 and loaded.protocol["model"] == str(path)


@pytest.mark.slow  # a one-epoch training run
def test_training_checkpoint_scores_like_the_final_test_of_its_run(bright_dark_small, tmp_path, capsys) -> None:
    from uniformerv2.train import fit

    fit(tiny_train_config(bright_dark_small, tmp_path / "run", "optim.epochs=1"))
    run = tmp_path / "run"
    final = json.loads((run / "test_metrics.json").read_text())  # the run's own multi-view test of best.pt
    args = ["--root", bright_dark_small, "--workers", "0", "--json", tmp_path / "eval.json"]
    code, out, err = _run(capsys, "eval", bright_dark_small / "val.csv", "--checkpoint", run / "best.pt", *args)
    assert code == 0, err
    metrics = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert metrics["count"] == final["count"] and metrics["top1"] == pytest.approx(final["top1"])
    assert metrics["top5"] is None  # two classes: the run's own test reports 100
    assert "4 frames per clip" in err and "2 clips x 1 crops" in err
