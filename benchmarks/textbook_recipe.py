"""The textbook GMM-UBM recipe a student writes in 60 lines: the peer ``bench_accuracy.py`` measures against.

librosa MFCC (20 coefficients, 40 mel bands, 25-ms frames every 10 ms, audio at 16 kHz) with librosa's
delta and delta-delta, utterance mean and variance normalisation, no VAD; a 256-component diagonal
scikit-learn ``GaussianMixture`` (its defaults: k-means initialisation, up to 100 EM iterations) as the
UBM; speaker models by mean-only MAP adaptation with relevance factor 16 (Reynolds et al. 2000); the score
of a test against a speaker is the frame-averaged log-likelihood ratio, exact (all components).
Nothing here comes from spkid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np
from joblib import Parallel, delayed
from sklearn.mixture import GaussianMixture

SAMPLE_RATE = 16000
N_COMPONENTS = 256
RELEVANCE_FACTOR = 16.0


def features(path: Path) -> np.ndarray:
    """MFCC + delta + delta-delta of one file, normalised per utterance: (n_frames, 60) float32."""
    signal, rate = librosa.load(str(path), sr=SAMPLE_RATE)
    mfcc = librosa.feature.mfcc(
        y=signal, sr=rate, n_mfcc=20, n_fft=512, win_length=400, hop_length=160, n_mels=40
    )
    stacked = np.vstack([mfcc, librosa.feature.delta(mfcc), librosa.feature.delta(mfcc, order=2)]).T
    return ((stacked - stacked.mean(axis=0)) / (stacked.std(axis=0) + 1e-8)).astype(np.float32)


def features_many(paths: Sequence[Path], n_jobs: int = 2) -> list[np.ndarray]:
    """:func:`features` of many files, in parallel processes, input order."""
    return Parallel(n_jobs=n_jobs, batch_size=16)(delayed(features)(path) for path in paths)


def train_ubm(pool: Sequence[np.ndarray], seed: int) -> GaussianMixture:
    """The UBM: scikit-learn's diagonal GMM on every pool frame."""
    return GaussianMixture(N_COMPONENTS, covariance_type="diag", random_state=seed).fit(np.vstack(pool))


def adapt_means(ubm: GaussianMixture, utterances: Sequence[np.ndarray]) -> np.ndarray:
    """Mean-only MAP adaptation of the UBM to one speaker's frames: the speaker's (K, D) means."""
    frames = np.vstack(utterances)
    responsibilities = ubm.predict_proba(frames)
    counts = responsibilities.sum(axis=0)
    data_means = responsibilities.T @ frames / np.maximum(counts, 1e-10)[:, None]
    alpha = (counts / (counts + RELEVANCE_FACTOR))[:, None]
    return alpha * data_means + (1.0 - alpha) * ubm.means_


def _log_sum_exp(log_prob: np.ndarray) -> np.ndarray:
    peak = log_prob.max(axis=-1, keepdims=True)
    return peak[..., 0] + np.log(np.exp(log_prob - peak).sum(axis=-1))


def score_matrix(
    ubm: GaussianMixture, speaker_means: Sequence[np.ndarray], tests: Sequence[np.ndarray]
) -> np.ndarray:
    """Frame-averaged LLR of every test against every speaker (exact, all components): (n_tests, n_speakers).

    ``log N(x | mu, var) = const - 0.5 x^2 . p + x . (mu p) - 0.5 mu^2 . p`` with precisions ``p``: one
    matrix product per test covers every speaker and the UBM.
    """
    precisions = 1.0 / ubm.covariances_  # (K, D)
    means = np.stack([ubm.means_, *speaker_means])  # (1 + S, K, D): the UBM first
    constant = (
        np.log(ubm.weights_)
        - 0.5 * np.sum(np.log(2 * np.pi * ubm.covariances_), axis=1)
        - 0.5 * np.sum(means**2 * precisions, axis=2)
    )  # (1 + S, K)
    linear = (means * precisions).reshape(-1, means.shape[2])  # ((1 + S) K, D)
    scores = np.empty((len(tests), len(speaker_means)))
    for row, frames in enumerate(tests):
        frames = frames.astype(np.float64)
        quadratic = -0.5 * (frames**2) @ precisions.T  # (n, K)
        log_prob = (frames @ linear.T).reshape(len(frames), *constant.shape) + constant + quadratic[:, None]
        per_frame = _log_sum_exp(log_prob)  # (n, 1 + S)
        scores[row] = np.mean(per_frame[:, 1:] - per_frame[:, :1], axis=0)
    return scores
