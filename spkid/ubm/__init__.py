"""Universal background model training, MAP adaptation of speaker models, and enrollment.

The public face of the UBM stage; its modules, one job each (imports point down the list):

- :mod:`~spkid.ubm.config` :class:`UBMConfig`, :class:`EnrollConfig` and the UBM size a pool supports;
- :mod:`~spkid.ubm.shards` bounded pieces of the frames, and the E-step statistics of one piece;
- :mod:`~spkid.ubm.backends` where UBM E-steps run (in-process, joblib, Dask): the statistics source of the
  one EM loop, :func:`spkid.gmm.run_em`;
- :mod:`~spkid.ubm.train` :func:`train_ubm`; :mod:`~spkid.ubm.map` :func:`map_adapt`, :func:`map_from_stats`
  and :func:`enroll`.
"""

from spkid.ubm.config import ADAPTABLE, BACKENDS, EnrollConfig, UBMConfig, effective_components
from spkid.ubm.map import enroll, map_adapt, map_from_stats
from spkid.ubm.train import train_ubm

__all__ = [
    "ADAPTABLE",
    "BACKENDS",
    "EnrollConfig",
    "UBMConfig",
    "effective_components",
    "enroll",
    "map_adapt",
    "map_from_stats",
    "train_ubm",
]
