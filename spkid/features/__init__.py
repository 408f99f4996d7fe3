"""The MFCC front-end: waveform → MFCC + Δ + ΔΔ → energy VAD → CMVN, one file or many in parallel.

The public face of the feature stage; its modules, one job each (imports point down the list):

- :mod:`~spkid.features.filterbanks` analysis windows and the Slaney mel filterbank (numpy only);
- :mod:`~spkid.features.config` :class:`FeatureConfig`, every setting of the front-end;
- :mod:`~spkid.features.frontend` framing, power spectrum, log-mel, cepstra;
- :mod:`~spkid.features.vad`, :mod:`~spkid.features.derivatives` (Δ, ΔΔ), :mod:`~spkid.features.normalization`
  (CMVN, :class:`GlobalStats`), :mod:`~spkid.features.warping` (feature warping);
- :mod:`~spkid.features.files` feature files on disk; :mod:`~spkid.features.cache` the extraction cache;
  :mod:`~spkid.features.jobs` worker processes;
- :mod:`~spkid.features.extraction` :func:`extract` (one utterance); :mod:`~spkid.features.batch`
  :func:`extract_many` (many files) and :func:`resolve_sample_rate`; :mod:`~spkid.features.store`
  :class:`FeatureStore`, the on-disk feature store.

The names below are imported from their modules when first used. Worker processes that unpickle a
:class:`FeatureFile` import :mod:`spkid.features.files` and so this package: it must not pull in the
decoding and signal-processing modules (soundfile, scipy) they never run.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module of this package that defines it.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "batch": (
        "ExtractResult",
        "choose_sample_rate",
        "extract_many",
        "extract_pool",
        "resolve_sample_rate",
        "reusing_raw_pools",
    ),
    "cache": ("CACHE_VERSION",),
    "config": ("FeatureConfig",),
    "derivatives": ("deltas", "with_deltas"),
    "extraction": ("extract", "normalise"),
    "files": ("FeatureFile", "SkippedFile", "StoredFeatures"),
    "frontend": (
        "frame_signal",
        "log_mel",
        "mel_filterbank",
        "mfcc",
        "power_spectrum",
        "pre_emphasis",
        "window_function",
    ),
    "normalization": (
        "GlobalStats",
        "adaptive_cmvn",
        "adaptive_level_cmvn",
        "cmvn",
        "global_cmvn",
        "level_normalisation",
        "sliding_cmvn",
    ),
    "store": ("FeatureStore",),
    "vad": ("energy_vad", "frame_energy_db"),
    "warping": ("feature_warping",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
