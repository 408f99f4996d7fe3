"""The Python API behind every ``spkid`` command: train a UBM, enroll, identify, verify, score trial lists.

Each function takes paths, does the whole job and returns a small result object; the CLI only parses
arguments, calls one of these and prints. The feature settings chosen at :func:`train_ubm_from_audio` are
stored in the model and used by every later call, and the stored score normalisation is applied
automatically. Training is :mod:`spkid.recognizer.training`, enrollment :mod:`spkid.recognizer.enrollment`,
identification :mod:`spkid.recognizer.identification`, verification :mod:`spkid.recognizer.verification`,
trial scoring :mod:`spkid.recognizer.trial_scoring`, evaluation of score files
:mod:`spkid.metrics.evaluation`; all are re-exported here.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spkid.metrics import evaluate, labelled_scores
from spkid.recognizer.bands import companion_of, drop_from_companion, is_wideband_companion
from spkid.recognizer.enrollment import EnrollResult, enroll_from_audio
from spkid.recognizer.identification import Identification, IdentifyResult, identify
from spkid.recognizer.level_choice import LEVEL_CHOICE_FILE, LEVEL_KEPT_DIR
from spkid.recognizer.results import Verification, VerifyResult
from spkid.recognizer.speaker_folders import speakers_in_folder
from spkid.recognizer.training import SKIPPED_LIST_FILE, TrainResult, train_ubm_from_audio
from spkid.recognizer.trial_scoring import ScoreResult, score_trials
from spkid.recognizer.verification import verify
from spkid.score import Calibrator
from spkid.store import ModelStore

__all__ = [
    "SKIPPED_LIST_FILE",
    "EnrollResult",
    "Identification",
    "IdentifyResult",
    "ModelSummary",
    "ScoreResult",
    "TrainResult",
    "Verification",
    "VerifyResult",
    "calibrate_model",
    "describe_model",
    "enroll_from_audio",
    "evaluate",
    "identify",
    "rebuild_speaker_bank",
    "remove_speaker",
    "score_trials",
    "speakers_in_folder",
    "train_ubm_from_audio",
    "verify",
]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ModelSummary:
    """What ``spkid list`` shows about a model.

    Examples
    --------
    >>> from pathlib import Path
    >>> from spkid.recognizer import ModelSummary
    >>> summary = ModelSummary(
    ...     Path("model"), ["spk01"], n_components=512, n_features=60, sample_rate=16000, normalization="none"
    ... )
    >>> summary.to_dict()["model_dir"], summary.to_dict()["speakers"]
    ('model', ['spk01'])
    """

    model_dir: Path
    speakers: list[str]
    n_components: int
    n_features: int
    sample_rate: int
    normalization: str
    #: The speakers of the wideband companion (features.bands: auto on a wideband pool); None without one.
    wideband_speakers: list[str] | None = None
    #: The speakers of the narrowband companion (features.bands: auto on a narrowband pool); None without one.
    narrowband_speakers: list[str] | None = None
    #: The features' CMVN ("pending" while a ``cmvn: auto`` model awaits the enrollment that chooses).
    cmvn: str = "utterance"

    def to_dict(self) -> dict[str, Any]:
        summary = asdict(self)
        summary["model_dir"] = str(self.model_dir)
        return summary


def describe_model(model_dir: PathLike) -> ModelSummary:
    """Enrolled speakers and the main settings of a model directory.

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import enroll_from_audio, load_config, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> corpus = make_speakers(f"{tmp.name}/audio", n_speakers=3, n_utterances=3, duration_s=2.0)
    >>> config = load_config(None, ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=2"])
    >>> model = f"{tmp.name}/model"
    >>> _ = train_ubm_from_audio(model, [f"{tmp.name}/audio"], config)
    >>> _ = enroll_from_audio(model, {name: files[:2] for name, files in corpus.items()})
    >>> from spkid.recognizer import describe_model
    >>> summary = describe_model(model)
    >>> summary.speakers, summary.n_components, summary.sample_rate, summary.normalization, summary.cmvn
    (['spk01', 'spk02', 'spk03'], 16, 16000, 'none', 'pending')
    >>> tmp.cleanup()
    """
    store = ModelStore.open(model_dir)
    n_components, n_features = store.ubm_shape
    companion = companion_of(model_dir)
    in_companion = None if companion is None else ModelStore.open(companion).speakers()
    wideband = companion is not None and is_wideband_companion(companion)
    return ModelSummary(
        model_dir=Path(model_dir),
        speakers=store.speakers(),
        n_components=n_components,
        n_features=n_features,
        sample_rate=int(store.feature_config.get("sample_rate", 0)),
        normalization=str(store.score_config.get("normalization", "none")),
        wideband_speakers=in_companion if wideband else None,
        narrowband_speakers=None if wideband else in_companion,
        cmvn="pending" if (store.path / LEVEL_KEPT_DIR).is_dir() else _cmvn_kept(store),
    )


def _cmvn_kept(store: ModelStore) -> str:
    """The stored CMVN, with its relevance where ``cmvn: auto`` removed the channel harder."""
    cmvn = str(store.feature_config.get("cmvn"))
    try:
        chosen = json.loads((store.path / LEVEL_CHOICE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not a cmvn: auto model (or its record is unreadable)
        return cmvn
    if not isinstance(chosen, dict) or chosen.get("relevance_frames") is None:
        return cmvn
    frames = store.feature_config.get("cmvn_relevance_frames", chosen["relevance_frames"])  # the one in use
    return f"{cmvn}, {float(frames):g} frames of relevance"


def remove_speaker(model_dir: PathLike, name: str) -> None:
    """Delete an enrolled speaker (StoreError when the model or the speaker does not exist).

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import enroll_from_audio, load_config, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> corpus = make_speakers(f"{tmp.name}/audio", n_speakers=3, n_utterances=3, duration_s=2.0)
    >>> config = load_config(None, ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=2"])
    >>> model = f"{tmp.name}/model"
    >>> _ = train_ubm_from_audio(model, [f"{tmp.name}/audio"], config)
    >>> _ = enroll_from_audio(model, {name: files[:2] for name, files in corpus.items()})
    >>> from spkid.recognizer import describe_model, remove_speaker
    >>> remove_speaker(model, "spk02")
    >>> describe_model(model).speakers
    ['spk01', 'spk03']
    >>> tmp.cleanup()
    """
    ModelStore.open(model_dir).remove_speaker(name)
    drop_from_companion(model_dir, [name])


def rebuild_speaker_bank(model_dir: PathLike) -> int:
    """Rebuild a model's speaker bank from its speaker files; returns the number of speakers in it.

    Examples
    --------
    >>> from spkid.recognizer import rebuild_speaker_bank
    >>> rebuild_speaker_bank("no/such/model")
    Traceback (most recent call last):
    spkid.errors.StoreError: no model at no/such/model; run spkid train-ubm first
    """
    return ModelStore.open(model_dir).rebuild_bank()


def calibrate_model(
    model_dir: PathLike, scores: PathLike, trials: PathLike | None = None, *, p_effective: float = 0.5
) -> Calibrator:
    """Fit a linear calibration on a labelled score file and store it in the model.

    From then on :func:`identify` and :func:`verify` report calibrated LLRs and decide at the Bayes
    threshold (p_target 0.01) unless a threshold is given. Fit it on scores the model itself produced
    (``spkid score``) on development trials, not on the trials you evaluate. A model with a
    companion (``features.bands: auto``) is calibrated as the system it is: the scores ``spkid score``
    wrote come from the model each trial was routed to, so fit it on development trials with the
    bandwidths it will meet; the calibration is stored in both models (the companion first).

    Raises
    ------
    StoreError
        No model. DataError: unlabelled or one-sided scores.

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import enroll_from_audio, load_config, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> corpus = make_speakers(f"{tmp.name}/audio", n_speakers=3, n_utterances=3, duration_s=2.0)
    >>> config = load_config(None, ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=2"])
    >>> model = f"{tmp.name}/model"
    >>> _ = train_ubm_from_audio(model, [f"{tmp.name}/audio"], config)
    >>> _ = enroll_from_audio(model, {name: files[:2] for name, files in corpus.items()})
    >>> from pathlib import Path
    >>> from spkid.recognizer import calibrate_model, score_trials, verify
    >>> trials = Path(tmp.name, "dev_trials.txt")  # every speaker against every held-out recording
    >>> lines = [f"{a} {b}_03 {'target' if a == b else 'nontarget'}\\n" for a in corpus for b in corpus]
    >>> _ = trials.write_text("".join(lines))
    >>> scores = Path(tmp.name, "dev_scores.txt")
    >>> _ = score_trials(model, trials, output=scores, audio_root=f"{tmp.name}/audio")
    >>> calibrator = calibrate_model(model, scores, trials)
    >>> calibrator.scale_ > 0  # higher scores, higher calibrated LLRs
    True
    >>> result = verify(model, "spk01", corpus["spk01"][2:])  # now decided at -logit(0.01) on calibrated LLRs
    >>> round(result.results[0].threshold, 1)
    4.6
    >>> tmp.cleanup()
    """
    store = ModelStore.open(model_dir)
    target, nontarget = labelled_scores(scores, trials)
    labels = np.concatenate([np.ones(target.size), np.zeros(nontarget.size)])
    calibrator = Calibrator(p_effective).fit(np.concatenate([target, nontarget]), labels)
    fitted = {"scale": calibrator.scale_, "offset": calibrator.offset_, "p_effective": calibrator.p_effective}
    companion = companion_of(model_dir)
    if companion is not None:  # first: until the main model holds the same, routing keeps to the main model
        ModelStore.open(companion).save_calibration(fitted)
    store.save_calibration(fitted)
    return calibrator
