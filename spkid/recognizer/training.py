"""Training a model directory from audio: the UBM, its normalisation cohort, the stored settings.

:func:`train_ubm_from_audio` is what ``spkid train-ubm`` calls: it picks the front-end rate from the pool,
extracts the pool's features (in memory or through the feature store), trains the UBM on them with the
cohort's impostor segments held out, selects the cohort and writes the model directory.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spkid.audio import find_audio_files
from spkid.errors import StoreError
from spkid.features import (
    ExtractResult,
    FeatureConfig,
    FeatureStore,
    GlobalStats,
    SkippedFile,
    StoredFeatures,
    extract_pool,
    resolve_sample_rate,
    reusing_raw_pools,
)
from spkid.progress import IterationDisplay
from spkid.recognizer.bands import band_configs, companion_dir_name, remove_companion, split_by_band
from spkid.recognizer.config import Config, load_config
from spkid.recognizer.level_choice import LEVEL_KEPT_DIR, remove_level_kept
from spkid.recognizer.pool_files import (
    SKIPPED_LIST_FILE,
    check_unusable_share,
    no_usable_audio,
    write_skipped_list,
)
from spkid.score import hold_out_cohort_segments, normalisable, select_cohort
from spkid.store import MANIFEST_FILE, ModelStore
from spkid.ubm import effective_components, train_ubm

__all__ = ["SKIPPED_LIST_FILE", "TrainResult", "train_ubm_from_audio", "training_header"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_ubm_from_audio` built.

    ``skipped`` lists every file left out: ``unusable`` ones (too little speech, skipped by default) and,
    with ``skip_bad``, unreadable ones; the full list is also in the model's ``skipped_files.txt``.

    Examples
    --------
    >>> from pathlib import Path
    >>> from spkid.recognizer import TrainResult
    >>> result = TrainResult(
    ...     Path("model"), n_files=9, n_frames=1782, n_components=16, n_features=60, cohort_size=2,
    ...     cohort_frames_held_out=198,
    ... )
    >>> result.n_frames - result.cohort_frames_held_out, result.skipped
    (1584, [])
    """

    model_dir: Path
    n_files: int
    n_frames: int
    n_components: int
    n_features: int
    cohort_size: int
    skipped: list[SkippedFile] = field(default_factory=list)
    cohort_frames_held_out: int = 0  # of n_frames: the cohort's test segments, not used to train the UBM
    sample_rate: int = 0  # of the front-end (chosen from the pool with features.sample_rate: auto)
    cmvn: str = "utterance"
    companion: Path | None = None  # the companion model (features.bands: auto): wideband/ or narrowband/
    level_kept: Path | None = None  # the no-CMVN model of features.cmvn: auto, until the enrollment chooses


def training_header(
    n_components: int,
    n_files: int,
    n_frames: int,
    n_held_out: int,
    *,
    frames_per_iteration: int | None = None,
    model: str = "UBM",
) -> str:
    """What the UBM is trained on, said before EM starts: the frames EM sees and those held out.

    Every frame count train-ubm prints later (each EM iteration's, the closing summary) is one of these.

    Parameters
    ----------
    n_components : int
        The components EM fits (after any reduction for a small pool).
    n_files, n_frames, n_held_out : int
        Files and speech frames of the pool, and the frames of it held out as the cohort's segments.
    frames_per_iteration : int, optional
        ``ubm.max_frames`` when it is below the frames EM trains on: each iteration's fresh subsample.
    model : str
        What is trained ("UBM", or "wideband companion UBM" / "narrowband companion UBM" for the second
        model of ``bands: auto``).

    Examples
    --------
    >>> print(training_header(64, 10, 1000, 100))  # doctest: +NORMALIZE_WHITESPACE
    UBM EM: 64 components on 900 frames (1,000 speech frames of 10 files; 100 held out as the cohort's
    impostor segments)
    >>> print(training_header(64, 10, 1000, 0, frames_per_iteration=500))  # doctest: +NORMALIZE_WHITESPACE
    UBM EM: 64 components on 1,000 frames (1,000 speech frames of 10 files), a random 500 of them per
    iteration
    """
    held_out = f"; {n_held_out:,} held out as the cohort's impostor segments" if n_held_out else ""
    n_trained = n_frames - n_held_out
    subsample = (
        f", a random {frames_per_iteration:,} of them per iteration"
        if frames_per_iteration is not None and frames_per_iteration < n_trained
        else ""
    )
    return (
        f"{model} EM: {n_components} components on {n_trained:,} frames "
        f"({n_frames:,} speech frames of {n_files:,} files{held_out}){subsample}"
    )


def _stored_pool(
    store: FeatureStore,
    files: list[Path],
    config: FeatureConfig,
    *,
    n_jobs: int,
    skip_bad: bool,
    progress: bool,
) -> tuple[StoredFeatures, GlobalStats | None]:
    """:func:`spkid.features.extract_pool` into the feature store (read back memory-mapped).

    With pool statistics, the un-normalised features are stored first and the normalised ones are stored
    too, keyed by the statistics.
    """
    options = {"n_jobs": n_jobs, "progress": progress, "skip_bad": skip_bad, "skip_unusable": True}
    if not config.needs_global_stats:
        return store.build(files, config, **options), None
    raw = store.build(files, dataclasses.replace(config, cmvn="none"), **options)
    if not raw:
        return raw, None
    stats = GlobalStats.from_features(raw)
    features = store.build(raw.paths, config, n_jobs=n_jobs, progress=progress, stats=stats)
    features.skipped = list(raw.skipped)
    return features, stats


def _with_cmvn(config: Config, cmvn: str) -> Config:
    return dataclasses.replace(config, features=dataclasses.replace(config.features, cmvn=cmvn))


def train_ubm_from_audio(
    model_dir: PathLike,
    audio_paths: Iterable[PathLike],
    config: Config | None = None,
    *,
    n_jobs: int = 1,
    skip_bad: bool = False,
    progress: bool = False,
    overwrite: bool = False,
    cache_dir: PathLike | None = None,
    iteration_log: bool = False,
    em_label: str = "UBM",
) -> TrainResult:
    """Train a UBM on audio files/folders, pick the normalisation cohort, and create the model directory.

    With ``features.sample_rate: auto`` the front-end rate is chosen from the pool's native rates first
    (:func:`spkid.features.resolve_sample_rate`); with ``features.cmvn`` "adaptive" or "global" the pool's
    un-normalised feature statistics are estimated and stored with the model. Files with too little speech
    (too short, silent) are skipped and listed in ``skipped_files.txt`` unless they are more than
    ``ubm.max_unusable_fraction`` of the pool. With ``features.bands: auto`` a companion model is trained too,
    on the pool's recordings of its band: with a 16 kHz front-end a wideband one on the wideband recordings
    (native rate 16 kHz or more), with an 8 kHz front-end a narrowband one (from 20 Hz) on the others (none:
    no companion; :mod:`spkid.recognizer.bands`). ``features.cmvn: auto`` trains it "adaptive_level" and
    one without CMVN in ``level-kept/`` for the enrollment to choose (:mod:`.level_choice`).

    Parameters
    ----------
    model_dir : path
        Created; must not already hold a model unless ``overwrite``.
    audio_paths : iterable of path
        Files, or folders searched recursively.
    config : Config, optional
        All four sections are stored in the model (the defaults when None).
    n_jobs : int
        Feature-extraction worker processes.
    skip_bad : bool
        Also skip unreadable files (returned in ``skipped``) instead of stopping at the first.
    progress : bool
        Progress bars on stderr, and a live display of the EM iterations (for a terminal).
    iteration_log, overwrite : bool
        Without ``progress``: a line per EM iteration on stderr (a log). Replace an existing model.
    cache_dir : path, optional
        Feature store (:class:`spkid.features.FeatureStore`): features written once, the UBM trained from
        the memory-mapped files (memory does not grow with the pool; with Dask on a remote cluster, on a
        filesystem the workers share). None: features in memory.
    em_label : str
        What the EM header calls the model ("UBM", "wideband companion UBM", "UBM without CMVN", ...).

    Raises
    ------
    StoreError
        A model exists and ``overwrite`` is false (checked before any work), or it cannot be written.
    AudioError
        An unreadable file (without ``skip_bad``).
    DataError
        No usable file, or more than ``ubm.max_unusable_fraction`` of them unusable.

    Examples
    --------
    >>> import tempfile
    >>> from spkid.corpora.synthetic import make_speakers
    >>> from spkid.recognizer import load_config, train_ubm_from_audio
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = make_speakers(f"{tmp.name}/audio", n_speakers=3, n_utterances=3, duration_s=2.0)
    >>> config = load_config(None, ["ubm.n_components=16", "ubm.max_iter=3", "score.cohort_size=2"])
    >>> result = train_ubm_from_audio(f"{tmp.name}/model", [f"{tmp.name}/audio"], config)
    >>> result.n_files, result.n_components, result.n_features, result.sample_rate, result.cohort_size
    (9, 16, 60, 16000, 2)
    >>> tmp.cleanup()
    """
    config = load_config(None) if config is None else config
    model_dir = Path(model_dir)
    if (model_dir / MANIFEST_FILE).is_file() and not overwrite:
        raise StoreError(f"{model_dir}: a model already exists here; pass --overwrite to replace it")
    audio_paths = list(audio_paths)
    if config.features.cmvn == "auto":  # two models, for the enrollment to choose (level_choice)
        options = {"n_jobs": n_jobs, "skip_bad": skip_bad, "progress": progress, "cache_dir": cache_dir}
        options |= {"iteration_log": iteration_log}
        with reusing_raw_pools():  # the pool is decoded once for both (without a feature store)
            result = train_ubm_from_audio(
                model_dir, audio_paths, _with_cmvn(config, "adaptive_level"), overwrite=overwrite, **options
            )
            kept = train_ubm_from_audio(
                model_dir / LEVEL_KEPT_DIR,
                audio_paths,
                _with_cmvn(config, "none"),
                overwrite=True,
                **options,
                em_label=f"{em_label} without CMVN",
            )
        return dataclasses.replace(result, level_kept=kept.model_dir)
    files = find_audio_files(audio_paths)
    feature_config, companion_config = band_configs(
        resolve_sample_rate(config.features, files, skip_bad=skip_bad)
    )
    # the pool's files of the companion's band (bands.py): a mixed pool's others would give it a wrong band
    companion_name = None if companion_config is None else companion_dir_name(companion_config)
    companion_files = [] if companion_name is None else split_by_band(files, companion_name)[0]
    # the main model of a pair compares across bands and channels (EnrollConfig.cross_band_relevance_factor)
    enroll_config = config.enroll.across_bands() if companion_files else config.enroll
    features: ExtractResult | StoredFeatures
    if cache_dir is None:
        features, stats = extract_pool(
            files, feature_config, n_jobs=n_jobs, skip_bad=skip_bad, progress=progress
        )
    else:
        features, stats = _stored_pool(
            FeatureStore(cache_dir),
            files,
            feature_config,
            n_jobs=n_jobs,
            skip_bad=skip_bad,
            progress=progress,
        )
    check_unusable_share(len(files), features.skipped, config.ubm.max_unusable_fraction)
    if not features:
        raise no_usable_audio(len(files), features.skipped)
    n_frames = features.n_frames if isinstance(features, StoredFeatures) else sum(len(f) for f in features)
    # The cohort's impostor test segments stay out of UBM training (see spkid.score.cohort), pool size
    # permitting.
    ubm_pool, n_held_out = hold_out_cohort_segments(
        features, ubm_config=config.ubm, cohort_size=config.score.cohort_size
    )
    with IterationDisplay(
        mode="live" if progress else "lines" if iteration_log else "off",
        header=training_header(
            effective_components(config.ubm, n_frames - n_held_out),
            len(features),
            n_frames,
            n_held_out,
            frames_per_iteration=config.ubm.max_frames,
            model=em_label,
        ),
    ):
        ubm = train_ubm(ubm_pool, config.ubm)
    cohort = select_cohort(
        features,
        ubm,
        size=config.score.cohort_size,
        enroll_config=enroll_config,
        random_state=config.ubm.random_state,
    )
    store = ModelStore.create(
        model_dir,
        feature_config=feature_config.to_dict(),
        ubm_config=config.ubm.to_dict(),
        enroll_config=enroll_config.to_dict(),
        score_config=normalisable(config.score, len(cohort)).to_dict(),  # a pool of 9 normalises nothing
        ubm=ubm,
        feature_stats=None if stats is None else stats.to_arrays(),
        overwrite=overwrite,
    )
    if overwrite:  # only now: a model that could not be written keeps its companion
        remove_companion(model_dir)  # the model it belonged to is replaced
        remove_level_kept(model_dir)
    store.save_cohort(cohort.to_arrays(ubm))
    write_skipped_list(model_dir, features.skipped)
    companion = None
    if companion_files:
        companion = train_ubm_from_audio(
            model_dir / str(companion_name),
            companion_files,
            dataclasses.replace(
                config,
                features=companion_config,
                ubm=dataclasses.replace(
                    config.ubm, n_components=min(config.ubm.n_components, config.ubm.wideband_components)
                ),
            ),
            n_jobs=n_jobs,
            skip_bad=skip_bad,
            progress=progress,
            overwrite=True,
            cache_dir=cache_dir,
            iteration_log=iteration_log,
            em_label=f"{companion_name} companion {em_label}",
        ).model_dir
    n_components, n_features = np.shape(ubm.means_)
    return TrainResult(
        model_dir=model_dir,
        n_files=len(features),
        n_frames=n_frames,
        n_components=int(n_components),
        n_features=int(n_features),
        cohort_size=len(cohort),
        skipped=list(features.skipped),
        cohort_frames_held_out=n_held_out,
        sample_rate=int(feature_config.sample_rate),
        cmvn=feature_config.cmvn,
        companion=companion,
    )
