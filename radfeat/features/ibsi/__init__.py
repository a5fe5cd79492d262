"""radfeat's own IBSI 1 feature engine: pure NumPy / SciPy, every IBSI 1 feature family and aggregation.

* :func:`ibsi_features` — image + mask + spacing + :class:`IBSISettings` → ``{IBSI tag: value}``;
* :func:`ibsi_catalogue` — tag → IBSI code, feature name, family and aggregation (for citing a column);
* family modules: :mod:`~radfeat.features.ibsi.morphology`, :mod:`~radfeat.features.ibsi.intensity`
  (statistics, histogram, intensity-volume histogram), :mod:`~radfeat.features.ibsi.matrices` (GLCM,
  GLRLM, GLSZM, GLDZM, NGTDM, NGLDM counts), :mod:`~radfeat.features.ibsi.texture` (their formulas),
  :mod:`~radfeat.features.ibsi.aggregation` (2D / 2.5D / 3D, averaged / merged) and
  :mod:`~radfeat.features.ibsi.preprocessing` (interpolation, re-segmentation, discretisation);
* :mod:`~radfeat.features.ibsi.filters` — the IBSI 2 convolutional filters (mean, LoG, Laws, Gabor,
  separable wavelets, Simoncelli).

Checked against all 482 IBSI 1 digital-phantom consensus values and the CT-phantom configurations A–E
(``tests/test_ibsi_engine.py``), and 30 IBSI 2 phase-1 reference response maps
(``tests/test_ibsi_filters.py``).
"""

from radfeat.features.ibsi.catalogue import IBSI_FAMILY_PREFIXES, ibsi_catalogue
from radfeat.features.ibsi.engine import (
    DEFAULT_BLOCKS,
    ENGINES,
    FAMILIES,
    IBSISettings,
    engine_runs,
    ibsi_features,
)

__all__ = [
    "IBSISettings",
    "ibsi_features",
    "engine_runs",
    "ibsi_catalogue",
    "FAMILIES",
    "IBSI_FAMILY_PREFIXES",
    "DEFAULT_BLOCKS",
    "ENGINES",
]
