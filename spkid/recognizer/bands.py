"""Two front-ends in one model directory: their bands, the companion and who is in it.

With ``features.bands: auto``, ``train-ubm`` makes two models. The main one, in the model directory, starts
at the telephone band's bottom (:data:`TELEPHONE_F_MIN_HZ`) and compares recordings of any bandwidth: below
300 Hz a telephone line holds nothing, and a wideband recording's energy there would be a difference between
the two sides that is not the speaker. The companion holds the pool's whole band, for comparisons whose
recordings all have the pool's bandwidth:

- on a wideband pool (front-end at 16 kHz), in :data:`COMPANION_DIR` (``wideband/``): 20 Hz up to
  :data:`WIDEBAND_F_MAX_HZ`, for wideband recordings (native rate of 16 kHz or more);
- on a narrowband pool (front-end at 8 kHz), in :data:`NARROWBAND_COMPANION_DIR` (``narrowband/``): from the
  configured bottom (20 Hz), for narrowband recordings (native rate under 16 kHz).

It holds the speakers enrolled on recordings of its band only. A recording is scored by the companion when it
is of that band itself and every speaker it is compared with is in the companion; otherwise by the main model
(:mod:`spkid.recognizer.routing`), which so scores every comparison across bands and those of recordings
outside the companion's band. Enrollment, removal, identification, verification, trial
scoring (``spkid score``), ``spkid run`` and ``spkid serve`` all follow this rule. ``spkid calibrate`` stores
one calibration in both models (the system as routed is calibrated on development trials routed the same way);
while the two hold different calibrations (an interrupted calibrate) the main model scores everything.
The main model's speakers and cohort are MAP-adapted with ``enroll.cross_band_relevance_factor`` (16 in
configs): models nearer the UBM carry across a channel the enrollment did not have. The companion keeps
``enroll.relevance_factor`` (4), which adapts short enrollments further. ``train-ubm`` stores each model's
factor as its ``relevance_factor`` (an older model keeps the one it stored).
``bench_accuracy.py`` measures it (README, "Defaults, and why").
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from spkid.audio import audio_info
from spkid.errors import SpkidError, StoreError
from spkid.features import FeatureConfig
from spkid.gmm import SufficientStats
from spkid.store import MANIFEST_FILE, ModelStore

__all__ = [
    "COMPANION_DIR",
    "COMPANION_DIRS",
    "Dropped",
    "NARROWBAND_COMPANION_DIR",
    "TELEPHONE_F_MIN_HZ",
    "WIDEBAND_F_MAX_HZ",
    "WIDEBAND_RATE_HZ",
    "all_in_band",
    "band_configs",
    "companion_dir_name",
    "companion_of",
    "drop_from_companion",
    "in_band",
    "is_wideband",
    "remove_companion",
    "split_by_band",
]

#: The companion model's folder inside a model directory, on a wideband pool.
COMPANION_DIR = "wideband"
#: The companion model's folder on a narrowband pool (its whole band, from 20 Hz).
NARROWBAND_COMPANION_DIR = "narrowband"
#: Every folder a companion may have.
COMPANION_DIRS: tuple[str, ...] = (COMPANION_DIR, NARROWBAND_COMPANION_DIR)
#: Bottom of the main model's band with ``bands: auto`` (a telephone line's high-pass).
TELEPHONE_F_MIN_HZ = 300.0
#: Top of the companion's band: 0.95 of the 8 kHz Nyquist frequency of 16 kHz audio.
WIDEBAND_F_MAX_HZ = 7600.0
#: Native rate from which a recording counts as wideband.
WIDEBAND_RATE_HZ = 16000

PathLike = str | os.PathLike[str]
logger = logging.getLogger(__name__)


def band_configs(features: FeatureConfig) -> tuple[FeatureConfig, FeatureConfig | None]:
    """The main and the companion front-ends of a resolved feature config.

    Parameters
    ----------
    features : FeatureConfig
        With a rate in Hz (``train-ubm`` resolves ``"auto"`` first).

    Returns
    -------
    (FeatureConfig, FeatureConfig or None)
        ``features`` itself and None with ``bands: single``; otherwise the main config (``f_min_hz`` raised to
        :data:`TELEPHONE_F_MIN_HZ`) and the companion's (``bands: single``): at 16 kHz and above, ``f_max_hz``
        :data:`WIDEBAND_F_MAX_HZ`; below, the configured band from its own bottom (None when that bottom is
        already the main model's: the companion would be the main model again).

    Examples
    --------
    >>> main, companion = band_configs(FeatureConfig(bands="auto", f_max_hz=3800.0))
    >>> (main.f_min_hz, main.f_max_hz), (companion.f_min_hz, companion.f_max_hz)
    ((300.0, 3800.0), (20.0, 7600.0))
    >>> narrow, whole = band_configs(FeatureConfig(sample_rate=8000, f_max_hz=3800.0, bands="auto"))
    >>> (narrow.f_min_hz, narrow.f_max_hz), (whole.f_min_hz, whole.f_max_hz)
    ((300.0, 3800.0), (20.0, 3800.0))
    """
    if features.bands != "auto" or not features.is_resolved:
        return features, None
    main = dataclasses.replace(features, f_min_hz=max(features.f_min_hz, TELEPHONE_F_MIN_HZ))
    if int(features.sample_rate) < WIDEBAND_RATE_HZ:
        if features.f_min_hz >= main.f_min_hz:
            return main, None
        return main, dataclasses.replace(features, bands="single")
    companion = dataclasses.replace(
        features, f_max_hz=max(features.f_max_hz, WIDEBAND_F_MAX_HZ), bands="single"
    ).resolve(int(features.sample_rate))
    return main, companion


def companion_dir_name(companion: FeatureConfig) -> str:
    """The folder of a companion front-end (:func:`band_configs`) inside its model directory.

    Examples
    --------
    >>> [companion_dir_name(FeatureConfig(sample_rate=rate)) for rate in (16000, 8000)]
    ['wideband', 'narrowband']
    """
    return COMPANION_DIR if int(companion.sample_rate) >= WIDEBAND_RATE_HZ else NARROWBAND_COMPANION_DIR


def companion_of(model_dir: PathLike) -> Path | None:
    """The companion model inside ``model_dir`` (``wideband/`` or ``narrowband/``); None when it has none.

    Examples
    --------
    >>> import tempfile
    >>> companion_of(tempfile.gettempdir()) is None
    True
    """
    for name in COMPANION_DIRS:
        path = Path(model_dir) / name
        if (path / MANIFEST_FILE).is_file():
            return path
    return None


def is_wideband(path: PathLike) -> bool:
    """Whether a recording's native rate holds the companion's band (16 kHz or more; header only).

    An unreadable file counts as narrowband: the main model then reports its error.

    Examples
    --------
    >>> import tempfile, numpy as np, soundfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     soundfile.write(f"{folder}/a.wav", np.zeros(800), 8000)
    ...     is_wideband(f"{folder}/a.wav")
    False
    """
    try:
        return audio_info(path).sample_rate_hz >= WIDEBAND_RATE_HZ
    except SpkidError:
        return False


def is_wideband_companion(companion: PathLike) -> bool:
    """Whether the companion in folder ``companion`` is the wideband one (``wideband/``, reaching above the
    main model) rather than the narrowband one (``narrowband/``, reaching below it): its folder says which.

    Examples
    --------
    >>> is_wideband_companion("model/wideband"), is_wideband_companion("model/narrowband")
    (True, False)
    """
    return Path(companion).name == COMPANION_DIR


def in_band(path: PathLike, companion: PathLike = COMPANION_DIR) -> bool:
    """Whether a recording has the band of the companion in folder ``companion`` (its name says which):
    wideband (:func:`is_wideband`) for ``wideband/``, narrowband for ``narrowband/``.

    Examples
    --------
    >>> import tempfile, numpy as np, soundfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     soundfile.write(f"{folder}/a.wav", np.zeros(800), 8000)
    ...     in_band(f"{folder}/a.wav", "model/wideband"), in_band(f"{folder}/a.wav", "model/narrowband")
    (False, True)
    """
    return is_wideband(path) == is_wideband_companion(companion)


def split_by_band(
    files: Sequence[Path], companion: PathLike = COMPANION_DIR
) -> tuple[list[Path], list[Path]]:
    """``files`` as (those of the band of ``companion``, the others), each in input order (:func:`in_band`).

    Examples
    --------
    >>> split_by_band([])
    ([], [])
    """
    flags = [in_band(path, companion) for path in files]
    return [p for p, inside in zip(files, flags, strict=True) if inside], [
        p for p, inside in zip(files, flags, strict=True) if not inside
    ]


def all_in_band(files: Iterable[Path], companion: PathLike = COMPANION_DIR) -> bool:
    """Whether every one of ``files`` has the band of ``companion`` (:func:`in_band`)."""
    return all(in_band(path, companion) for path in files)


@dataclasses.dataclass
class Dropped:
    """Speakers :func:`drop_from_companion` took out, kept in memory so that an enrollment that fails or
    skips them can put them back (:meth:`put_back`)."""

    companion: Path | None = None
    #: name -> (its statistics, or its model when it kept none; its cohort statistics)
    kept: dict[str, tuple[object, object]] = dataclasses.field(default_factory=dict)
    #: name -> identity of the main model's file for it when it was dropped (inode, size, mtime; or None)
    main_files: dict[str, tuple[int, int, int] | None] = dataclasses.field(default_factory=dict)
    main: Path | None = None

    def restore(self, names: Iterable[str] | None = None) -> None:
        """Put back ``names`` (all when None) that the companion does not hold again.

        Raises
        ------
        StoreError
            The companion cannot be written (the speakers stay out of it: scored by the main model).
        """
        if self.companion is None:
            return
        store = ModelStore.open(self.companion)
        for name in self.kept if names is None else names:
            if name not in self.kept or name in store:
                continue
            stored, cohort_stats = self.kept[name]
            if isinstance(stored, SufficientStats):
                store.save_speaker_stats(name, stored, replace=True, cohort_stats=cohort_stats)
            else:
                store.save_speaker(name, stored, replace=True, cohort_stats=cohort_stats)

    def put_back(self, names: Iterable[str] | None = None, *, where_main_unchanged: bool = False) -> None:
        """:meth:`restore` that warns instead of raising; with ``where_main_unchanged`` only the speakers
        whose main-model file is still the one it was (a failed enrollment may have written some)."""
        chosen = list(self.kept if names is None else names)
        if where_main_unchanged and self.main is not None:
            main = ModelStore.open(self.main)
            chosen = [name for name in chosen if _file_identity(main, name) == self.main_files.get(name)]
        try:
            self.restore(chosen)
        except SpkidError as error:
            logger.warning("%s: speakers not put back into the companion (%s)", self.companion, error)


def _file_identity(store: ModelStore, name: str) -> tuple[int, int, int] | None:
    """A speaker file's inode, size and mtime (None when absent): an atomic write replaces all three."""
    try:
        status = store.speaker_path(name).stat()
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


def drop_from_companion(model_dir: PathLike, names: Iterable[str]) -> Dropped:
    """Remove ``names`` from the companion of ``model_dir`` where it holds them (no companion: nothing);
    what was removed, to :meth:`Dropped.put_back` should the enrollment that follows fail."""
    companion = companion_of(model_dir)
    if companion is None:
        return Dropped()
    store, main = ModelStore.open(companion), ModelStore.open(model_dir)
    dropped = Dropped(companion, main=Path(model_dir))
    for name in names:
        if name in store:
            model = store.load_speaker(name)  # also reads its cohort statistics
            try:
                stored: object = store.load_speaker_stats(name)
            except StoreError:  # a model kept without statistics
                stored = model
            dropped.kept[name] = (stored, store.cohort_stats.get(name))
            dropped.main_files[name] = _file_identity(main, name)
            store.remove_speaker(name)
    return dropped


def remove_companion(model_dir: PathLike) -> None:
    """Delete the companion folder of ``model_dir`` (before the model is retrained over)."""
    for name in COMPANION_DIRS:
        shutil.rmtree(Path(model_dir) / name, ignore_errors=True)
