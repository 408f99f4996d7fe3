"""Verification and identification metrics, trial lists and score files, evaluation and plots.

The public face of the metrics stage; its modules, one job each (imports point down the list):

- :mod:`~spkid.metrics.measures` EER, minDCF, actual DCF, Cllr, DET points, top-k accuracy;
- :mod:`~spkid.metrics.protocol` :class:`Trial`, :class:`ScoredTrial`, trial-list and score-file I/O;
- :mod:`~spkid.metrics.trials` trial lists as ``spkid score`` reads them, and the recordings they name;
- :mod:`~spkid.metrics.identification` identification results read back from ``spkid identify --json``;
- :mod:`~spkid.metrics.plots` DET and confusion plots (matplotlib: loaded on first use of a plot name);
- :mod:`~spkid.metrics.evaluation` a score file in, the metrics (and a DET plot) out;
- :mod:`~spkid.metrics.fused_scores` several systems' score files in, one fused score file out (loaded on
  first use of its names: it brings in the scoring package).
"""

from __future__ import annotations

import importlib
from typing import Any

from spkid.metrics.evaluation import (
    Evaluation,
    evaluate,
    evaluate_arrays,
    format_metrics,
    labelled_scores,
    markdown_metrics,
    metric_rows,
    read_labelled_scores,
)
from spkid.metrics.identification import REJECTED_LABEL, IdentificationLabels, read_identifications
from spkid.metrics.measures import (
    actual_dcf,
    cllr,
    det_curve,
    eer,
    identification_accuracy,
    min_cllr,
    min_dcf,
    rocch,
    verification_report,
)
from spkid.metrics.protocol import (
    ScoredTrial,
    Trial,
    read_scores,
    read_trials,
    split_scores,
    write_scores,
    write_trials,
)
from spkid.metrics.trials import RecordingResolver, TrialList, read_trial_list

#: Names of :mod:`spkid.metrics.plots`, imported when first used: matplotlib costs ~1.5 s of every command
#: that never plots.
_PLOTS = ("confusion_figure", "det_figure", "plot_confusion", "plot_det")
#: Names of :mod:`spkid.metrics.fused_scores`, imported when first used (it loads :mod:`spkid.score`).
_FUSION = ("AlignedScores", "FusedScores", "aligned_scores", "fuse_score_files")

__all__ = [
    "actual_dcf",
    "cllr",
    "det_curve",
    "eer",
    "identification_accuracy",
    "min_cllr",
    "min_dcf",
    "rocch",
    "verification_report",
    "REJECTED_LABEL",
    "IdentificationLabels",
    "read_identifications",
    "Evaluation",
    "evaluate",
    "evaluate_arrays",
    "format_metrics",
    "labelled_scores",
    "markdown_metrics",
    "metric_rows",
    "read_labelled_scores",
    "ScoredTrial",
    "Trial",
    "read_scores",
    "read_trials",
    "split_scores",
    "write_scores",
    "write_trials",
    "RecordingResolver",
    "TrialList",
    "read_trial_list",
    *_PLOTS,
    *_FUSION,
]


def __getattr__(name: str) -> Any:
    if name in _PLOTS:
        return getattr(importlib.import_module("spkid.metrics.plots"), name)
    if name in _FUSION:
        return getattr(importlib.import_module("spkid.metrics.fused_scores"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
