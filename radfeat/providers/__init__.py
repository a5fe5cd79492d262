"""Feature providers: each computes one family of features of a loaded case, with its own settings and
cache key; :func:`radfeat.extract.extract_table` composes them.

* :class:`WholeTumourRadiomics` — ``ct_tumour_*`` / ``pet_tumour_*`` (pyradiomics definitions);
* :class:`IBSIRadiomics` — ``ct_tumour_ibsi_*`` / ``pet_tumour_ibsi_*`` (radfeat's own IBSI 1 engine);
* :class:`PETDescriptors` — ``pet_tumour_suv_*`` (SUVmax, SUVpeak, MTV, TLG, heterogeneity);
* :class:`HabitatFeatures` — ``hab_*``, ``ct_hab{i}_*``, ``pet_hab{i}_*`` from a fitted habitat model.
"""

from radfeat.providers.base import FeatureProvider, stage
from radfeat.providers.habitats import HabitatFeatures
from radfeat.providers.ibsi import IBSIRadiomics
from radfeat.providers.pet import PETDescriptors
from radfeat.providers.radiomics import WholeTumourRadiomics

__all__ = [
    "FeatureProvider",
    "stage",
    "WholeTumourRadiomics",
    "IBSIRadiomics",
    "PETDescriptors",
    "HabitatFeatures",
]
