"""A model directory loaded for identification and verification, and the model-directory API the CLI calls.

The public face of the recognizer; its modules, one job each (imports point down the list):

- :mod:`~spkid.recognizer.config` the four-section :class:`Config` (``features``, ``ubm``, ``enroll``,
  ``score``) and :func:`load_config`;
- :mod:`~spkid.recognizer.recognizer` :class:`Recognizer`: stored settings, models, normalised scores,
  default decision thresholds;
- :mod:`~spkid.recognizer.results` what identification and verification return, and :func:`score_kind`;
- :mod:`~spkid.recognizer.bank_search` identification and verification through the speaker bank;
- :mod:`~spkid.recognizer.batch` batch work on joblib or Dask workers (enroll, identify, score), each worker
  holding the model and its bank open;
- :mod:`~spkid.recognizer.bands` a model's two front-ends (``features.bands: auto``): their bands, the
  companion (wideband or narrowband) and who is in it;
- :mod:`~spkid.recognizer.routing` which of the two scores a recording or a trial;
- :mod:`~spkid.recognizer.recordings` usable features of the recordings to identify or verify;
- :mod:`~spkid.recognizer.identification` and :mod:`~spkid.recognizer.verification` identify and verify
  from audio;
- :mod:`~spkid.recognizer.trial_scoring` score trial lists from audio (raw or calibrated);
- :mod:`~spkid.recognizer.training` :func:`train_ubm_from_audio`, a new model directory from audio;
- :mod:`~spkid.recognizer.enrollment` :func:`enroll_from_audio` (new speakers, replaced or grown ones);
- :mod:`~spkid.recognizer.api` the rest of the API behind the CLI (list, remove, calibrate), with
  everything above re-exported.
"""

from spkid.recognizer.api import (
    SKIPPED_LIST_FILE,
    EnrollResult,
    Identification,
    IdentifyResult,
    ModelSummary,
    ScoreResult,
    TrainResult,
    Verification,
    VerifyResult,
    calibrate_model,
    describe_model,
    enroll_from_audio,
    evaluate,
    identify,
    rebuild_speaker_bank,
    remove_speaker,
    score_trials,
    speakers_in_folder,
    train_ubm_from_audio,
    verify,
)
from spkid.recognizer.config import Config, apply_overrides, config_from_dict, config_to_yaml, load_config
from spkid.recognizer.recognizer import (
    NORMALISED_THRESHOLD,
    OPEN_SET_P_TARGET,
    RAW_LLR_THRESHOLD,
    Recognizer,
)
from spkid.recognizer.results import score_kind
from spkid.recognizer.trial_scoring import score_recordings

__all__ = [
    "NORMALISED_THRESHOLD",
    "OPEN_SET_P_TARGET",
    "RAW_LLR_THRESHOLD",
    "Recognizer",
    "Config",
    "apply_overrides",
    "config_from_dict",
    "config_to_yaml",
    "load_config",
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
    "score_kind",
    "score_recordings",
    "score_trials",
    "speakers_in_folder",
    "train_ubm_from_audio",
    "verify",
]
