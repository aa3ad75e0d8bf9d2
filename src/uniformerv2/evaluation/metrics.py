"""Video-level classification metrics from ranked predictions (official ``TestMeter``, §3.4).

Every metric is computed from each video's classes ranked by its view-averaged probability:
top-1 and top-5 accuracy (a video counts when its true class is first, or among the first five),
mean per-class accuracy (the recall of every class that has videos in the list, averaged over
those classes, as MMAction2's ``mean_class_accuracy``) and the confusion matrix (rows: true class,
columns: predicted class). Accuracies are percentages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["TOP_K", "Metrics", "compute_metrics"]

#: Ranks kept per video: top-5 needs five.
TOP_K = 5


@dataclass
class Metrics:
    """Accuracy of a list of videos.

    Attributes:
        top1: % of videos whose best class is the true one; None for an empty list.
        top5: % whose true class is among the best five; None when the head has fewer than 5
            classes (every video would count, so the number says nothing) or the list is empty.
        mean_class_accuracy: mean over classes with videos of their top-1 accuracy (%).
        count: videos scored.
        confusion: (C, C) int64 counts; row = true class, column = predicted class.
        class_count: (C,) videos per true class.
        class_correct: (C,) correctly classified videos per true class.
    """

    top1: float | None
    top5: float | None
    mean_class_accuracy: float | None
    count: int
    confusion: np.ndarray
    class_count: np.ndarray
    class_correct: np.ndarray

    def class_accuracy(self) -> list[float | None]:
        """Top-1 accuracy (%) of every class; None for a class without videos in the list."""
        return [100.0 * c / n if n else None for c, n in zip(self.class_correct, self.class_count, strict=True)]


def compute_metrics(ranked: Sequence[Sequence[int]], labels: Sequence[int], num_classes: int) -> Metrics:
    """Metrics of videos given their ranked classes.

    Args:
        ranked: per video the head rows of its best classes, best first (at least one; five
            for top-5).
        labels: per video its true head row.
        num_classes: classes of the head.

    Returns:
        :class:`Metrics`.
    """
    count = len(labels)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    if count == 0:
        zeros = np.zeros(num_classes, dtype=np.int64)
        return Metrics(None, None, None, 0, confusion, zeros, zeros)
    truth = np.asarray(labels, dtype=np.int64)
    first = np.asarray([r[0] for r in ranked], dtype=np.int64)
    np.add.at(confusion, (truth, first), 1)
    class_count = confusion.sum(axis=1)
    class_correct = np.diag(confusion).copy()
    present = class_count > 0
    top1 = 100.0 * float(class_correct.sum()) / count
    top5 = None
    if num_classes >= TOP_K:
        hits = sum(int(t) in list(r)[:TOP_K] for t, r in zip(truth, ranked, strict=True))
        top5 = 100.0 * hits / count
    mean_class = 100.0 * float(np.mean(class_correct[present] / class_count[present]))
    return Metrics(top1, top5, mean_class, count, confusion, class_count, class_correct)
