"""Evaluate a checkpoint on a labelled list of videos with its multi-view test protocol.

Each video goes through the same pipeline as :func:`uniformerv2.predict` (official multi-view
test, §3.3-3.4): K clips x S crops, softmax per view, probabilities averaged over the views. The
classes ranked by that average give top-1, top-5, mean per-class accuracy and the confusion
matrix (:mod:`uniformerv2.evaluation.metrics`). Videos that cannot be decoded are excluded from
the metrics, counted and listed.

With an output file the run is sharded and resumable like ``predict``
(:func:`uniformerv2.inference.sharding.run_sharded`): under ``torchrun`` rank r takes videos r,
r + W, ... and appends one JSON line per video to ``<out>.rank<r>.jsonl``; rank 0 merges every
rank's lines (one per video, so none is counted twice) and computes the metrics. A rerun skips the
videos already done. The shard files record the settings (:func:`job_fingerprint`: weights, class
names, preprocessing and views, decoding, precision); results of other settings are never mixed in:
they stop the run with an error, or are discarded with ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from uniformerv2.atomic import atomic_write_csv, atomic_write_json
from uniformerv2.errors import UniFormerV2Error
from uniformerv2.evaluation.lists import (
    EvalList,
    LabelError,
    ListFormat,
    has_names,
    identify_label_set,
    read_eval_list,
    resolve_list_labels,
)
from uniformerv2.evaluation.metrics import TOP_K, Metrics, compute_metrics
from uniformerv2.evaluation.plot import plot_confusion, require_matplotlib
from uniformerv2.evaluation.protocol import describe_protocol, format_protocol
from uniformerv2.inference.engine import model_labels, resolve_model, run_views, view_config
from uniformerv2.inference.sharding import job_fingerprint, run_sharded
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.runtime import dist_env
from uniformerv2.zoo import list_label_sets, load_labels, read_label_file

__all__ = ["EvalResult", "evaluate", "PREDICTION_COLUMNS"]

_logger = logging.getLogger(__name__)

#: Columns of the per-video predictions CSV (``top5``: head rows, best first, space-separated).
PREDICTION_COLUMNS = (
    "video",
    "label",
    "label_name",
    "prediction",
    "prediction_name",
    "score",
    "correct",
    "top5",
    "error",
)


@dataclass
class EvalResult:
    """Outcome of :func:`evaluate`.

    Attributes:
        metrics: top-1/top-5/mean-class accuracy (%), confusion matrix, per-class counts.
        labels: class names in head order.
        protocol: every setting of the run (:func:`describe_protocol`, plus the fingerprint).
        predictions: per scored video ``{"video", "label", "prediction", "score", "top",
            "scores"}`` (head rows; ``top``/``scores``: best five, best first), in list order.
        failures: (video, reason) of every video that could not be decoded, in list order.
        total: videos in the list.
        notes: warnings about the run (unchecked label order, a likely label-order mix-up).
    """

    metrics: Metrics
    labels: list[str]
    protocol: dict[str, Any]
    predictions: list[dict[str, Any]]
    failures: list[tuple[str, str]]
    total: int
    notes: list[str] = field(default_factory=list)

    @property
    def top1(self) -> float | None:
        return self.metrics.top1

    @property
    def top5(self) -> float | None:
        return self.metrics.top5

    @property
    def mean_class_accuracy(self) -> float | None:
        return self.metrics.mean_class_accuracy

    @property
    def count(self) -> int:
        return self.metrics.count

    @property
    def confusion(self) -> np.ndarray:
        return self.metrics.confusion

    def summary(self) -> str:
        """One line: the three accuracies and how many videos were scored."""
        failed = f"; {len(self.failures)} failed to decode and were excluded" if self.failures else ""
        return (
            f"top-1 {_pct(self.top1)}  top-5 {_pct(self.top5)}  mean class {_pct(self.mean_class_accuracy)}  "
            f"({self.count} of {self.total} videos, {self.protocol['views']} views{failed})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: protocol, metrics, per-class accuracy, confusion, failures, predictions."""
        m = self.metrics
        per_class = [
            {"index": i, "label": name, "count": int(n), "correct": int(c), "accuracy": acc}
            for i, (name, n, c, acc) in enumerate(
                zip(self.labels, m.class_count, m.class_correct, m.class_accuracy(), strict=True)
            )
        ]
        return {
            "protocol": self.protocol,
            "metrics": {
                "top1": m.top1,
                "top5": m.top5,
                "mean_class_accuracy": m.mean_class_accuracy,
                "count": m.count,
                "total": self.total,
                "failed": len(self.failures),
            },
            "notes": self.notes,
            "per_class": per_class,
            "confusion": {"rows": "true class", "columns": "predicted class", "matrix": m.confusion.tolist()},
            "failures": [{"video": v, "error": e} for v, e in self.failures],
            "predictions": self.predictions,
        }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}%"


def _list_labels(labels: Sequence[str] | str | os.PathLike[str] | None) -> tuple[list[str] | None, str]:
    """(names, how to call them) from a list of names, a shipped label-set name or a label file."""
    if labels is None:
        return None, ""
    if isinstance(labels, (str, os.PathLike)):
        text = os.fspath(labels)
        if text in list_label_sets():
            return load_labels(text), text
        if not os.path.isfile(text):
            raise LabelError(f"{text}: no such label file or shipped label set ({', '.join(list_label_sets())})")
        return read_label_file(text), text
    return list(labels), "the given labels"


def _store_base(output: str | os.PathLike[str] | None, csv_out: str | os.PathLike[str] | None) -> Path | None:
    base = output if output is not None else csv_out
    return None if base is None else Path(base)


def _job(
    net: torch.nn.Module, cfg: PreprocessConfig, device: torch.device, options: dict[str, Any], progress: bool
) -> Callable[[list[str]], Iterator[dict[str, Any]]]:
    """Per-video records: the best classes (head rows) and their view-averaged probabilities."""
    k = min(TOP_K, len(model_labels(net)))

    def forward(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"probs": net(x).float().softmax(dim=-1)}

    def job(todo: list[str]) -> Iterator[dict[str, Any]]:
        stream = run_views(todo, cfg, forward, device=device, **options)
        for result in tqdm(stream, total=len(todo), disable=not progress, unit="video", desc="eval"):
            if not result.ok:
                yield {"video": result.video, "error": result.error}
                continue
            scores, top = result.value["probs"].mean(dim=0).topk(k)
            yield {"video": result.video, "top": top.tolist(), "scores": [float(s) for s in scores]}

    return job


def _collect(
    items: EvalList,
    records: dict[str, dict[str, Any]],
    labels: list[str],
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Per-video predictions in list order, and the failures."""
    predictions: list[dict[str, Any]] = []
    failures: list[tuple[str, str]] = []
    for item in items.items:
        record = records.get(item.video, {"error": "no result was recorded for this video"})
        if "error" in record:
            failures.append((item.video, str(record["error"])))
            continue
        top = [int(i) for i in record["top"]]
        predictions.append(
            {
                "video": item.video,
                "label": item.label,
                "label_name": labels[item.label],
                "prediction": top[0],
                "prediction_name": labels[top[0]],
                "score": float(record["scores"][0]),
                "top": top,
                "scores": [float(s) for s in record["scores"]],
            }
        )
    return predictions, failures


def _order_hint(
    items: EvalList, predictions: list[dict[str, Any]], labels: list[str], top1: float | None
) -> str | None:
    """A warning when unchecked index labels score far better read in another shipped class order."""
    head_set = identify_label_set(labels)
    if items.kind != "indices" or items.checked or head_set is None or top1 is None or not predictions:
        return None
    best: tuple[float, str] | None = None
    for name in list_label_sets():
        other = load_labels(name)
        if name == head_set or len(other) != len(labels):
            continue
        try:
            rows = resolve_list_labels(other, labels, name)
        except LabelError:
            continue
        score = 100.0 * float(np.mean([p["prediction"] == rows[p["label"]] for p in predictions]))
        if best is None or score > best[0]:
            best = (score, name)
    if best is None or best[0] < top1 + 10.0 or best[0] < 2.0 * top1:
        return None
    return (
        f"the list's label indices look like the {best[1]} class order: top-1 would be {best[0]:.2f}% read that "
        f"way ({top1:.2f}% as given); if so, pass --labels {best[1]}"
    )


def _write_outputs(
    result: EvalResult,
    output: str | os.PathLike[str] | None,
    predictions_csv: str | os.PathLike[str] | None,
    plot: str | os.PathLike[str] | None,
) -> None:
    if output is not None:
        atomic_write_json(output, result.to_dict())
    if predictions_csv is not None:
        rows = [
            {**p, "correct": int(p["prediction"] == p["label"]), "top5": " ".join(map(str, p["top"]))}
            for p in result.predictions
        ]
        rows += [{"video": v, "error": e} for v, e in result.failures]
        atomic_write_csv(predictions_csv, rows, PREDICTION_COLUMNS)
    if plot is not None and result.count:
        title = f"top-1 {_pct(result.top1)} on {result.count} videos"
        plot_confusion(result.confusion, result.labels, plot, title=title)


def evaluate(
    annotations: str | os.PathLike[str],
    model: Any = None,
    *,
    views: tuple[int, int] | str | None = None,
    labels: Sequence[str] | str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    list_format: ListFormat = "auto",
    separator: str | None = None,
    batch_size: int = 12,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    amp_dtype: torch.dtype | str | None = None,
    decode_short_side: int | None = None,
    output: str | os.PathLike[str] | None = None,
    predictions_csv: str | os.PathLike[str] | None = None,
    plot: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    verbose: bool = False,
) -> EvalResult | None:
    """Multi-view accuracy of a checkpoint on a labelled list of videos.

    Args:
        annotations: the list: ``path,label`` (or ``path label``) lines, or ``frame_dir
            num_frames label`` for frame folders; labels are class indices or class names
            (see :mod:`uniformerv2.evaluation.lists`).
        model: a loaded model, or anything :func:`uniformerv2.load_model` reads (zoo name,
            official ``.pyth``, MMAction2 ``.pth``, model directory, training ``best.pt``, Hub
            id); None loads ``uniformerv2.zoo.DEFAULT_MODEL``.
        views: (clips, crops) or ``"KxS"``; the checkpoint's own test views when None.
        labels: class names of the list's label indices: a list, a label file (one name per
            line, or ``index,name``) or a shipped label set (``"kinetics400_alphabetical"``).
            Indices are then mapped to head rows by name, which checks the list's class order.
            For a checkpoint without class names they name the head, in the same order.
        root: folder joined to relative paths in the list (training's ``data.root``); None:
            the list's own folder.
        list_format: ``"auto"``, ``"video"`` or ``"frames"``.
        separator: field separator of ``video`` lines; None: ``,`` when present, else whitespace.
        batch_size: most views per forward pass.
        num_workers: DataLoader processes decoding ahead of the model.
        device: as for :func:`uniformerv2.predict`.
        amp_dtype: ``"bf16"``/``"fp16"`` autocast; None runs in the model's precision (the
            official test is fp32).
        decode_short_side: decoder-side downscaling (see :func:`uniformerv2.predict`); None is exact.
        output: write the JSON report here; with ``output`` or ``predictions_csv`` the run is
            sharded under torchrun and resumable.
        predictions_csv: write one row per video (:data:`PREDICTION_COLUMNS`) here.
        plot: save the confusion matrix picture here (needs matplotlib).
        overwrite: discard stored results of this output (another model or setting) and start again.
        progress: tqdm bar over videos.
        verbose: print the protocol before starting and warnings to stderr (rank 0).

    Returns:
        An :class:`EvalResult`; None on ranks other than 0 under torchrun.

    Raises:
        LabelError: a bad list line, an unknown class name, or a label file that does not fit.
        ResumeError: stored results of another setting (without ``overwrite``).
        UniFormerV2Error: torchrun without an output file.
    """
    rank, world, _ = dist_env()
    base = _store_base(output, predictions_csv)
    if base is None and world > 1:
        raise UniFormerV2Error("under torchrun, pass an output file (--json or --predictions) so ranks can merge")
    if plot is not None:
        require_matplotlib()
    net, dev = resolve_model(model, device)
    cfg = view_config(net, views)
    given, given_name = _list_labels(labels)
    head = model_labels(net)
    items = read_eval_list(
        annotations,
        head,
        list_labels=given,
        list_labels_name=given_name,
        root=None if root is None else os.fspath(root),
        fmt=list_format,
        separator=separator,
    )
    if given is not None and not has_names(head):
        if len(given) != len(head):
            raise LabelError(f"{given_name}: {len(given)} labels, but the model has {len(head)} classes")
        head = list(given)
    protocol = describe_protocol(
        cfg,
        head,
        model_source=str(model) if isinstance(model, (str, os.PathLike)) else _source(net),
        list_source=os.fspath(annotations),
        list_order=items.order,
        count=len(items.items),
        amp_dtype=amp_dtype,
        decode_short_side=decode_short_side,
    )
    names = hashlib.sha1("\n".join(head).encode("utf-8")).hexdigest()[:16]
    settings = job_fingerprint(
        net, "eval", views, class_names=names, amp=amp_dtype, decode_short_side=decode_short_side
    )
    protocol["fingerprint"] = hashlib.sha1(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    _announce(protocol, items.notes, verbose and rank == 0)
    options = {
        "batch_size": batch_size,
        "num_workers": num_workers,
        "amp_dtype": amp_dtype,
        "decode_short_side": decode_short_side,
    }
    job = _job(net, cfg, dev, options, progress and rank == 0)
    videos = [item.video for item in items.items]
    if base is None:
        records = {r["video"]: r for r in job(list(dict.fromkeys(videos)))}
    else:
        unique = list(dict.fromkeys(videos))
        summary = run_sharded(unique, job, base, write=_no_write, fingerprint=settings, overwrite=overwrite)
        if summary.skipped and verbose:
            print(f"rank {rank}: skipped {summary.skipped} videos already done", file=sys.stderr)
        if summary.records is None:
            return None
        records = {str(r["video"]): r for r in summary.records}
    return _finish(items, records, head, protocol, (output, predictions_csv, plot), verbose)


def _no_write(records: list[dict[str, Any]]) -> None:
    """The merged records become the report (:func:`_write_outputs`), not a file of their own."""


def _source(net: torch.nn.Module) -> str:
    return str(getattr(net, "pretrained_cfg", {}).get("source") or "model given in memory")


def _announce(protocol: dict[str, Any], notes: list[str], verbose: bool) -> None:
    if verbose:
        print(format_protocol(protocol), file=sys.stderr, flush=True)
    _warn(notes, verbose)


def _warn(notes: list[str], verbose: bool) -> None:
    for note in notes:
        if verbose:
            print(f"warning: {note}", file=sys.stderr, flush=True)
        else:
            _logger.warning(note)


def _finish(
    items: EvalList,
    records: dict[str, dict[str, Any]],
    head: list[str],
    protocol: dict[str, Any],
    outputs: tuple[Any, Any, Any],
    verbose: bool,
) -> EvalResult:
    predictions, failures = _collect(items, records, head)
    metrics = compute_metrics([p["top"] for p in predictions], [p["label"] for p in predictions], len(head))
    notes = list(items.notes)
    hint = _order_hint(items, predictions, head, metrics.top1)
    if hint is not None:
        notes.append(hint)
        _warn([hint], verbose)
    result = EvalResult(metrics, head, protocol, predictions, failures, len(items.items), notes)
    _write_outputs(result, *outputs)
    return result
