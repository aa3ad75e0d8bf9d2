"""Shipped label lists, K710 head maps and the user label-file reader."""

from __future__ import annotations

import pytest

from uniformerv2.zoo.labels import list_label_sets, load_label_map, load_labels, read_label_file

COUNTS = {
    "kinetics400": 400,
    "kinetics400_alphabetical": 400,
    "kinetics600_alphabetical": 600,
    "kinetics700_alphabetical": 700,
    "kinetics710_official": 710,
    "kinetics710_mmaction2": 710,
    "sthv1": 174,
    "sthv2": 174,
    "mit": 339,
    "activitynet": 200,
    "ucf101": 101,
    "hmdb51": 51,
}


@pytest.mark.parametrize(("name", "count"), COUNTS.items())
def test_counts_and_unique_names(name: str, count: int) -> None:
    labels = load_labels(name)
    assert len(labels) == count
    assert len(set(labels)) == count
    assert all(label and label == label.strip() and "\t" not in label for label in labels)


def test_list_label_sets_covers_every_set() -> None:
    assert set(list_label_sets()) == set(COUNTS)


def test_official_kinetics400_order() -> None:
    labels = load_labels("kinetics400")
    assert labels[:2] == ["riding a bike", "marching"]
    assert labels[399] == "playing badminton"
    assert labels == load_labels("kinetics710_official")[:400]


def test_load_labels_returns_a_copy() -> None:
    load_labels("sthv2").clear()
    assert len(load_labels("sthv2")) == 174


def test_unknown_label_set() -> None:
    with pytest.raises(KeyError, match="kinetics400_alphabetical"):
        load_labels("kinetics401")


@pytest.mark.parametrize("source", ["kinetics710_official", "kinetics710_mmaction2"])
@pytest.mark.parametrize(
    ("target", "count", "min_equal"),
    [
        ("kinetics400_alphabetical", 400, 387),
        ("kinetics600_alphabetical", 600, 597),
        ("kinetics700_alphabetical", 700, 699),
    ],
)
def test_label_maps_gather_alphabetical_heads(source: str, target: str, count: int, min_equal: int) -> None:
    label_map = load_label_map(source, target)
    assert len(label_map) == count
    assert len(set(label_map)) == count  # injective
    assert all(0 <= i < 710 for i in label_map)
    if count == 400:
        assert sorted(label_map) == list(range(400))  # a permutation of the K400 rows
    k710 = load_labels(source)
    gathered = [k710[i] for i in label_map]
    same = sum(a == b for a, b in zip(gathered, load_labels(target), strict=False))
    assert same >= min_equal


def test_mmaction2_k400_map_is_identity() -> None:
    assert load_label_map("kinetics710_mmaction2", "kinetics400_alphabetical") == list(range(400))


def test_unknown_label_map() -> None:
    with pytest.raises(KeyError):
        load_label_map("kinetics710_official", "sthv2")


def test_read_plain_file(tmp_path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("cat\ndog\n\nbird\n", encoding="utf-8")
    assert read_label_file(path, expected=3) == ["cat", "dog", "bird"]


def test_read_tab_indexed_file_sorted_by_index(tmp_path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("dog\t1\ncat\t0\n", encoding="utf-8")
    assert read_label_file(path) == ["cat", "dog"]


def test_read_csv_with_header_and_quotes(tmp_path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text('id,name\n1,"Putting something, something on the table"\n0,Holding something\n', encoding="utf-8")
    assert read_label_file(path) == ["Holding something", "Putting something, something on the table"]


def test_read_csv_one_based(tmp_path) -> None:
    path = tmp_path / "classInd.csv"
    path.write_text("1,ApplyEyeMakeup\n2,ApplyLipstick\n", encoding="utf-8")
    assert read_label_file(path) == ["ApplyEyeMakeup", "ApplyLipstick"]


def test_read_shipped_official_k710_file_format(tmp_path) -> None:
    path = tmp_path / "k710.txt"
    path.write_text("".join(f"{name}\t{i}\n" for i, name in enumerate(load_labels("kinetics710_official"))))
    assert read_label_file(path, expected=710) == load_labels("kinetics710_official")


def test_wrong_length_names_file(tmp_path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"mine\.txt: 2 labels, but the model has 400 classes") as info:
        read_label_file(path, expected=400)
    assert "\n" not in str(info.value)


def test_gap_in_indices(tmp_path) -> None:
    path = tmp_path / "gap.txt"
    path.write_text("a\t0\nb\t2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="gap.txt"):
        read_label_file(path)
