"""The model-directory side of ``features.cmvn: auto``'s channel rule (:mod:`spkid.recognizer.channel_rule`).

:func:`channel_check` measures, on the enrollment of a model's first speakers, whether the main model with
the channel removed harder identifies their recordings clearly better than the model the level rule chose;
:func:`remove_channel_harder` then gives the main model and its companion that front-end.
:mod:`spkid.recognizer.level_choice` calls both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spkid.blas import blas_threads
from spkid.features import FeatureConfig, extract_many, normalise
from spkid.recognizer.bands import COMPANION_DIRS
from spkid.recognizer.channel_rule import (
    CHECK_SPEAKERS,
    HARDER_RELEVANCE_FRAMES,
    held_out_eer,
    removes_channel_harder,
)
from spkid.recognizer.level_rule import LevelChoice
from spkid.recognizer.recognizer import Recognizer
from spkid.store import MANIFEST_FILE, ModelStore

__all__ = ["channel_check", "remove_channel_harder"]


def channel_check(
    recognizer: Recognizer,
    unnormalised: Recognizer,
    choice: LevelChoice,
    features: Mapping[str, Mapping[Path, np.ndarray]],
    **options,
) -> LevelChoice:
    """``choice``, or the main model (``recognizer``) with the channel removed harder when its enrollment
    says so (:mod:`spkid.recognizer.channel_rule`; ``features``: the no-CMVN model's, ``unnormalised``,
    speaker -> file -> frames), on the first :data:`~spkid.recognizer.channel_rule.CHECK_SPEAKERS` speakers
    (by name) with two recordings."""
    measurable = sorted(name for name, frames in features.items() if len(frames) > 1)[:CHECK_SPEAKERS]
    raw = {name: list(features[name].values()) for name in measurable}
    if len(raw) < 3:
        return choice
    front_end = _up_to_cmvn(recognizer.feature_config)
    derive = front_end is not None and front_end == _up_to_cmvn(unnormalised.feature_config)

    def by_speaker(config: FeatureConfig) -> dict[str, list[np.ndarray]]:
        stats = recognizer.feature_stats
        if derive:  # the no-CMVN model's features, normalised: what extraction gives, bit for bit
            with blas_threads(1):
                return {name: [normalise(frames, config, stats) for frames in raw[name]] for name in raw}
        paths = [file for name in measurable for file in features[name]]
        extracted = extract_many(paths, config, stats=stats, **options)
        frames_of = dict(zip(extracted.paths, extracted, strict=True))
        return {name: [frames_of[f] for f in features[name] if f in frames_of] for name in measurable}

    if choice.kept:
        chosen_ubm, chosen = unnormalised.ubm, raw
    else:
        chosen_ubm, chosen = recognizer.ubm, by_speaker(recognizer.feature_config)
    harder = by_speaker(
        dataclasses.replace(recognizer.feature_config, cmvn_relevance_frames=HARDER_RELEVANCE_FRAMES)
    )
    top_c = recognizer.score_config.top_c
    held_out = (
        held_out_eer(chosen_ubm, chosen, recognizer.enroll_config, top_c=top_c),
        held_out_eer(recognizer.ubm, harder, recognizer.enroll_config, top_c=top_c),
    )
    if not removes_channel_harder(*held_out):
        return dataclasses.replace(choice, held_out=held_out)
    return dataclasses.replace(
        choice, kept=False, relevance_frames=HARDER_RELEVANCE_FRAMES, held_out=held_out
    )


def _up_to_cmvn(config: FeatureConfig) -> dict[str, Any] | None:
    """The settings that make the features before CMVN; None where CMVN does not apply to the extracted
    frames alone (statistics over every frame, speech kept after)."""
    if config.cmvn_frames != "speech":
        return None
    return {name: value for name, value in dataclasses.asdict(config).items() if not name.startswith("cmvn")}


def remove_channel_harder(model_dir: Path, relevance_frames: float) -> None:
    """Give the main model and its companions ``relevance_frames`` (they hold no speakers yet); the rewrite
    of each is crash-safe, and a half-done one is redone by the next enrollment's choice."""
    for directory in [*(model_dir / name for name in COMPANION_DIRS), model_dir]:
        if not (directory / MANIFEST_FILE).is_file():
            continue
        store = ModelStore.open(directory)
        settings = store.feature_config
        if (
            settings.get("cmvn") != "adaptive_level"
            or settings.get("cmvn_relevance_frames") == relevance_frames
        ):
            continue
        calibration = store.load_calibration()
        cohort = store.load_cohort() if store.has_cohort() else None
        rewritten = ModelStore.create(
            directory,
            feature_config={**settings, "cmvn_relevance_frames": relevance_frames},
            **{name: store.manifest[name] for name in ("ubm_config", "enroll_config", "score_config")},
            ubm=store.load_ubm(),
            feature_stats=store.load_feature_stats(),
            overwrite=True,
        )
        if cohort is not None:
            rewritten.save_cohort(cohort)
        if calibration is not None:
            rewritten.save_calibration(calibration)
