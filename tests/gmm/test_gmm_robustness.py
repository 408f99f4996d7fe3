"""Property-based robustness of EM (hypothesis): degenerate frames (duplicates, constant dimensions, fewer
frames than components) give a valid model or a ModelError, never NaN."""

from __future__ import annotations

import numpy as np
from conftest import PROPERTY, check_model, degenerate_frames
from hypothesis import given
from hypothesis import strategies as st

from spkid.errors import ModelError
from spkid.gmm import DiagonalGMM


@PROPERTY
@given(
    drawn=degenerate_frames(),
    init=st.sampled_from(["kmeans++", "split"]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_em_on_degenerate_frames_returns_a_valid_model_or_raises_model_error(drawn, init, dtype):
    X, n_components = drawn
    try:
        model = DiagonalGMM(n_components, max_iter=5, init=init, random_state=0, dtype=dtype).fit(X)
    except ModelError as error:
        assert "\n" not in str(error)
        return
    check_model(model, X)
