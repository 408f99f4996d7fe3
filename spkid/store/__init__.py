"""The on-disk model directory: manifest, UBM, one file per enrolled speaker, cohort; checks and locking.

The public face of the store; its modules, one job each (imports point down the list):

- :mod:`~spkid.store.locking` the writer lock; :mod:`~spkid.store.checks` speaker names, format versions,
  model and cohort array validation;
- :mod:`~spkid.store.manifest` ``manifest.json``: building, encoding, reading;
- :mod:`~spkid.store.layout` the files of a model directory and writing a new one crash-safely;
- :mod:`~spkid.store.score_files` the cohort and calibration files, speakers' cohort statistics;
- :mod:`~spkid.store.model_store` :class:`ModelStore`, a model directory opened for reading and writing.
"""

from spkid.store.checks import (
    FORMAT_VERSION,
    MAX_NAME_LENGTH,
    config_differences,
    speaker_file_name,
    validate_speaker_name,
)
from spkid.store.layout import (
    CALIBRATION_FILE,
    COHORT_FILE,
    FRONTEND_FILE,
    LOCK_FILE,
    MANIFEST_FILE,
    SPEAKERS_DIR,
    UBM_FILE,
)
from spkid.store.model_store import ModelStore
from spkid.store.score_files import SpeakerCohortStats

__all__ = [
    "CALIBRATION_FILE",
    "COHORT_FILE",
    "FORMAT_VERSION",
    "FRONTEND_FILE",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "MAX_NAME_LENGTH",
    "ModelStore",
    "SPEAKERS_DIR",
    "SpeakerCohortStats",
    "UBM_FILE",
    "config_differences",
    "speaker_file_name",
    "validate_speaker_name",
]
