"""Property-based robustness of UBM training and MAP adaptation (hypothesis): degenerate frames give a valid
model or a ModelError, never NaN."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PROPERTY, check_model, degenerate_frames
from hypothesis import given
from hypothesis import strategies as st

from spkid.errors import ModelError
from spkid.gmm import DiagonalGMM
from spkid.ubm import UBMConfig, map_adapt, train_ubm


@PROPERTY
@given(drawn=degenerate_frames(), n_utterances=st.integers(1, 3))
def test_ubm_training_and_map_adaptation_on_degenerate_frames(drawn, n_utterances):
    X, n_components = drawn
    utterances = [part for part in np.array_split(X, n_utterances) if len(part)]
    config = UBMConfig(n_components=n_components, max_iter=3, min_frames_per_component=2)
    try:
        ubm = train_ubm(utterances, config)
    except ModelError as error:
        assert "\n" not in str(error)
        return
    check_model(ubm, X)
    for adapt in ("means", ("means", "weights", "variances")):
        check_model(map_adapt(ubm, utterances[:1], adapt=adapt), X)
        check_model(map_adapt(ubm, X[:1], relevance_factor=0.0, adapt=adapt), X)  # one frame, no prior


def test_far_fewer_frames_than_components_is_a_clear_error():
    X = np.random.default_rng(0).standard_normal((5, 3))
    with pytest.raises(ModelError, match=r"5 frames is too few for 16 components"):
        DiagonalGMM(16).fit(X)
    with pytest.raises(ModelError, match=r"5 frames cannot train even 2 components"):
        train_ubm([X], UBMConfig(n_components=16))
