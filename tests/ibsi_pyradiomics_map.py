"""Re-export of :mod:`radfeat.features.ibsi.pyradiomics_names` for the tests and benchmarks."""

from radfeat.features.ibsi.pyradiomics_names import (  # noqa: F401
    FIRST_ORDER,
    GLCM,
    GLDM,
    GLRLM,
    GLSZM,
    IBSI_ALIASES,
    NGTDM,
    SHAPE,
    pyradiomics_to_ibsi,
)
