"""The second rule of ``features.cmvn: auto``: remove each recording's channel harder, or not.

Where every recording has a channel of its own (a handset per call, a device per session), a long
recording's spectral mean is mostly that channel, and the ``adaptive_level`` CMVN with
:data:`HARDER_RELEVANCE_FRAMES` frames of relevance (a 6-s recording loses two thirds of its mean, not a
sixth) identifies the speaker better; where a speaker's recordings share a channel, or are single words,
the usual relevance keeps what makes the speaker. The enrollment says which holds: each speaker's recordings
are identified one by one among the speakers, the speaker's model adapted without that recording
(:func:`held_out_eer`), once with the model the level rule chose and once with ``adaptive_level`` at
:data:`HARDER_RELEVANCE_FRAMES`; :func:`removes_channel_harder` takes the second when it makes clearly fewer
errors. :mod:`spkid.recognizer.level_choice` extracts the features and rewrites the model it keeps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from spkid.gmm import MixtureParameters
from spkid.metrics import eer
from spkid.score import Scorer
from spkid.ubm import EnrollConfig
from spkid.ubm.map import map_from_stats

__all__ = [
    "CHANNEL_EER_RATIO",
    "CHECK_SPEAKERS",
    "HARDER_RELEVANCE_FRAMES",
    "MIN_EER_GAIN",
    "held_out_eer",
    "held_out_scores",
    "removes_channel_harder",
]

#: ``cmvn_relevance_frames`` of the harder channel removal (the main model's UBM is kept: trained on the pool
#: at the default 3000 frames, it scored as well as a UBM trained at 300 on the bench's conditions).
HARDER_RELEVANCE_FRAMES = 300.0
#: The harder removal is taken when its held-out EER is at most this share of the chosen model's ...
CHANNEL_EER_RATIO = 0.5
#: ... and lower by at least this much (EER, 0..1): one error in 50 held-out recordings is 2 points.
MIN_EER_GAIN = 0.02
#: The check identifies the recordings of at most this many speakers (the first by name), so a large first
#: enrollment holds at most their features twice more and scores them against at most this many models.
CHECK_SPEAKERS = 100


def held_out_scores(
    ubm: MixtureParameters,
    recordings: Mapping[str, Sequence[np.ndarray]],
    config: EnrollConfig,
    *,
    top_c: int | None = 10,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Each enrollment recording identified among the speakers, its own left out of its speaker's model.

    Every recording of a speaker with two or more is scored (frame-averaged LLR) against every speaker's
    model, its own speaker's MAP-adapted from the others of its recordings.

    Parameters
    ----------
    ubm : MixtureParameters
    recordings : mapping of str to sequence of ndarray of shape (n_frames, n_features)
        Speaker -> the features of each of its recordings.
    config : EnrollConfig
        The MAP settings of the enrollment.
    top_c : int or None
        Scoring's top-C (None: exact).

    Returns
    -------
    (ndarray of shape (n_held,), ndarray of shape (n_held * (n_speakers - 1),)) or None
        Target and non-target scores, speakers in sorted order and each one's recordings in order; None
        with fewer than 3 speakers of two recordings or more.

    Examples
    --------
    >>> ubm = MixtureParameters(np.full(2, 0.5), [[-1.0], [1.0]], np.ones((2, 1)))
    >>> centres = {"a": -2.0, "b": 0.0, "c": 2.0}
    >>> recordings = {name: [np.full((50, 1), centre, np.float32)] * 2 for name, centre in centres.items()}
    >>> target, nontarget = held_out_scores(ubm, recordings, EnrollConfig())
    >>> target.shape, nontarget.shape
    ((6,), (12,))
    >>> bool(target.min() > nontarget.max())
    True
    """
    names = sorted(name for name, values in recordings.items() if len(values))
    stats = {name: [ubm.accumulate(frames) for frames in recordings[name]] for name in names}
    if sum(len(values) > 1 for values in stats.values()) < 3:
        return None
    adapt = {"relevance_factor": config.relevance_factor, "adapt": config.adapt}
    scorer = Scorer(
        ubm, {name: map_from_stats(ubm, sum(stats[name]), **adapt) for name in names}, top_c=top_c
    )
    target, nontarget = [], []
    for column, name in enumerate(names):
        held = list(recordings[name])
        if len(held) < 2:
            continue
        left_out = {
            str(i): map_from_stats(ubm, sum(s for j, s in enumerate(stats[name]) if j != i), **adapt)
            for i in range(len(held))
        }
        target.append(np.diag(Scorer(ubm, left_out, top_c=top_c).llr_many(held)))
        nontarget.append(np.delete(scorer.llr_many(held), column, axis=1).ravel())
    return np.concatenate(target), np.concatenate(nontarget)


def held_out_eer(
    ubm: MixtureParameters,
    recordings: Mapping[str, Sequence[np.ndarray]],
    config: EnrollConfig,
    *,
    top_c: int | None = 10,
) -> float | None:
    """The EER (0..1) of :func:`held_out_scores`; None when they cannot be measured.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ubm = MixtureParameters(np.full(2, 0.5), [[-1.0, 0.0], [1.0, 0.0]], np.ones((2, 2)))
    >>> voices = {"a": [-2.0, 0.0], "b": [0.0, 2.0], "c": [2.0, 0.0]}
    >>> recordings = {
    ...     name: [(rng.normal(size=(200, 2)) + centre).astype(np.float32) for _ in range(3)]
    ...     for name, centre in voices.items()
    ... }
    >>> held_out_eer(ubm, recordings, EnrollConfig())
    0.0
    >>> held_out_eer(ubm, {"a": recordings["a"]}, EnrollConfig()) is None
    True
    """
    scores = held_out_scores(ubm, recordings, config, top_c=top_c)
    return None if scores is None else float(eer(*scores))


def removes_channel_harder(chosen_eer: float | None, harder_eer: float | None) -> bool:
    """Whether the held-out EER at :data:`HARDER_RELEVANCE_FRAMES` beats the chosen model's clearly enough.

    Examples
    --------
    >>> removes_channel_harder(0.0387, 0.0100)  # a handset per LibriSpeech recording
    True
    >>> removes_channel_harder(0.0080, 0.0073), removes_channel_harder(0.0768, 0.0811)
    (False, False)
    >>> removes_channel_harder(None, 0.01)
    False
    """
    if chosen_eer is None or harder_eer is None:
        return False
    return harder_eer <= CHANNEL_EER_RATIO * chosen_eer and chosen_eer - harder_eer >= MIN_EER_GAIN
