"""Log-likelihood-ratio scoring against enrolled speakers, score normalisation, cohort and calibration.

The public face of the scoring stage; its modules, one job each (imports point down the list):

- :mod:`~spkid.score.normalize` Z-, T-, ZT-, S- and adaptive S-norm on score arrays (its dispatcher by
  method name, :func:`spkid.score.normalize.normalize`, is not re-exported: the name is the module's);
- :mod:`~spkid.score.summarised` Z-, S- and adaptive S-norm from each model's two stored numbers;
- :mod:`~spkid.score.calibrate` linear calibration of scores to LLRs, Bayes thresholds, open-set decisions;
- :mod:`~spkid.score.fusion` linear fusion of several systems' scores into one LLR;
- :mod:`~spkid.score._bank` (private) the stacked, quantised speaker parameters;
  :mod:`~spkid.score._kernels` (private) the compiled top-C scoring steps (:func:`start_kernels`
  starts their runtime);
- :mod:`~spkid.score.config` :class:`ScoreConfig`, the ``score`` section of the config;
- :mod:`~spkid.score.scorer` :class:`Scorer` (exact and top-C LLRs);
- :mod:`~spkid.score.cohort` the impostor cohort drawn from the UBM pool;
- :mod:`~spkid.score.normalizer` :class:`Normalizer`, one normalisation method applied with the cohort.
"""

from spkid.score._kernels import start_kernels
from spkid.score.calibrate import Calibrator, bayes_threshold, fit_llr
from spkid.score.cohort import (
    SEGMENT_FRAMES,
    Cohort,
    cohort_segment_rows,
    hold_out_cohort_segments,
    normalisable,
    select_cohort,
)
from spkid.score.config import MIN_NORMALISATION_COHORT, ScoreConfig
from spkid.score.fusion import Fusion
from spkid.score.normalize import METHODS, asnorm, snorm, tnorm, znorm, znorm_statistics, ztnorm
from spkid.score.normalizer import Normalizer
from spkid.score.scorer import Scorer
from spkid.score.summarised import SUMMARISED, model_summary, normalize_summarised

__all__ = [
    "METHODS",
    "MIN_NORMALISATION_COHORT",
    "SEGMENT_FRAMES",
    "SUMMARISED",
    "Calibrator",
    "Cohort",
    "Fusion",
    "Normalizer",
    "ScoreConfig",
    "Scorer",
    "asnorm",
    "bayes_threshold",
    "cohort_segment_rows",
    "fit_llr",
    "hold_out_cohort_segments",
    "model_summary",
    "normalisable",
    "normalize_summarised",
    "select_cohort",
    "snorm",
    "start_kernels",
    "tnorm",
    "znorm",
    "znorm_statistics",
    "ztnorm",
]
