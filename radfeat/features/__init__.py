"""Pure feature math, one module per family: radiomics (pyradiomics), PET descriptors, habitats."""
