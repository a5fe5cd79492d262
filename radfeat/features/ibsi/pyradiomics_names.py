"""pyradiomics feature keys ↔ IBSI 1 tags, for features whose definitions coincide.

pyradiomics averages GLCM and GLRLM features over the 13 3D directions (IBSI "3D, averaged"), computes
GLSZM, GLDM (= IBSI NGLDM with alpha 0, distance 1) and NGTDM in 3D. Kurtosis (pyradiomics: not excess)
and the PCA axis lengths (pyradiomics: population covariance) are listed although their definitions
differ by a constant / a factor: :mod:`radfeat.features.ibsi.pyradiomics_mode` applies pyradiomics'.
"""

FIRST_ORDER = {
    "Mean": "stat_mean",
    "Variance": "stat_var",
    "Skewness": "stat_skew",
    "Kurtosis": "stat_kurt",
    "Median": "stat_median",
    "Minimum": "stat_min",
    "10Percentile": "stat_p10",
    "90Percentile": "stat_p90",
    "Maximum": "stat_max",
    "InterquartileRange": "stat_iqr",
    "Range": "stat_range",
    "MeanAbsoluteDeviation": "stat_mad",
    "RobustMeanAbsoluteDeviation": "stat_rmad",
    "Energy": "stat_energy",
    "RootMeanSquared": "stat_rms",
    "Entropy": "ih_entropy",
    "Uniformity": "ih_uniformity",
}
SHAPE = {
    "MeshVolume": "morph_volume",
    "VoxelVolume": "morph_vol_approx",
    "SurfaceArea": "morph_area_mesh",
    "SurfaceVolumeRatio": "morph_av",
    "Sphericity": "morph_sphericity",
    "Maximum3DDiameter": "morph_diam",
    "MajorAxisLength": "morph_pca_maj_axis",
    "MinorAxisLength": "morph_pca_min_axis",
    "LeastAxisLength": "morph_pca_least_axis",
    "Elongation": "morph_pca_elongation",
    "Flatness": "morph_pca_flatness",
}
GLCM = {
    "Autocorrelation": "cm_auto_corr",
    "JointAverage": "cm_joint_avg",
    "ClusterProminence": "cm_clust_prom",
    "ClusterShade": "cm_clust_shade",
    "ClusterTendency": "cm_clust_tend",
    "Contrast": "cm_contrast",
    "Correlation": "cm_corr",
    "DifferenceAverage": "cm_diff_avg",
    "DifferenceEntropy": "cm_diff_entr",
    "DifferenceVariance": "cm_diff_var",
    "JointEnergy": "cm_energy",
    "JointEntropy": "cm_joint_entr",
    "Imc1": "cm_info_corr1",
    "Imc2": "cm_info_corr2",
    "Idm": "cm_inv_diff_mom",
    "Idmn": "cm_inv_diff_mom_norm",
    "Id": "cm_inv_diff",
    "Idn": "cm_inv_diff_norm",
    "InverseVariance": "cm_inv_var",
    "MaximumProbability": "cm_joint_max",
    "SumEntropy": "cm_sum_entr",
    "SumSquares": "cm_joint_var",
    "SumAverage": "cm_sum_avg",
}
GLRLM = {
    "ShortRunEmphasis": "rlm_sre",
    "LongRunEmphasis": "rlm_lre",
    "GrayLevelNonUniformity": "rlm_glnu",
    "GrayLevelNonUniformityNormalized": "rlm_glnu_norm",
    "RunLengthNonUniformity": "rlm_rlnu",
    "RunLengthNonUniformityNormalized": "rlm_rlnu_norm",
    "RunPercentage": "rlm_r_perc",
    "GrayLevelVariance": "rlm_gl_var",
    "RunVariance": "rlm_rl_var",
    "RunEntropy": "rlm_rl_entr",
    "LowGrayLevelRunEmphasis": "rlm_lgre",
    "HighGrayLevelRunEmphasis": "rlm_hgre",
    "ShortRunLowGrayLevelEmphasis": "rlm_srlge",
    "ShortRunHighGrayLevelEmphasis": "rlm_srhge",
    "LongRunLowGrayLevelEmphasis": "rlm_lrlge",
    "LongRunHighGrayLevelEmphasis": "rlm_lrhge",
}
GLSZM = {
    "SmallAreaEmphasis": "szm_sze",
    "LargeAreaEmphasis": "szm_lze",
    "GrayLevelNonUniformity": "szm_glnu",
    "GrayLevelNonUniformityNormalized": "szm_glnu_norm",
    "SizeZoneNonUniformity": "szm_zsnu",
    "SizeZoneNonUniformityNormalized": "szm_zsnu_norm",
    "ZonePercentage": "szm_z_perc",
    "GrayLevelVariance": "szm_gl_var",
    "ZoneVariance": "szm_zs_var",
    "ZoneEntropy": "szm_zs_entr",
    "LowGrayLevelZoneEmphasis": "szm_lgze",
    "HighGrayLevelZoneEmphasis": "szm_hgze",
    "SmallAreaLowGrayLevelEmphasis": "szm_szlge",
    "SmallAreaHighGrayLevelEmphasis": "szm_szhge",
    "LargeAreaLowGrayLevelEmphasis": "szm_lzlge",
    "LargeAreaHighGrayLevelEmphasis": "szm_lzhge",
}
GLDM = {
    "SmallDependenceEmphasis": "ngl_lde",
    "LargeDependenceEmphasis": "ngl_hde",
    "LowGrayLevelEmphasis": "ngl_lgce",
    "HighGrayLevelEmphasis": "ngl_hgce",
    "SmallDependenceLowGrayLevelEmphasis": "ngl_ldlge",
    "SmallDependenceHighGrayLevelEmphasis": "ngl_ldhge",
    "LargeDependenceLowGrayLevelEmphasis": "ngl_hdlge",
    "LargeDependenceHighGrayLevelEmphasis": "ngl_hdhge",
    "GrayLevelNonUniformity": "ngl_glnu",
    "DependenceNonUniformity": "ngl_dcnu",
    "DependenceNonUniformityNormalized": "ngl_dcnu_norm",
    "GrayLevelVariance": "ngl_gl_var",
    "DependenceVariance": "ngl_dc_var",
    "DependenceEntropy": "ngl_dc_entr",
}
NGTDM = {
    "Coarseness": "ngt_coarseness",
    "Contrast": "ngt_contrast",
    "Busyness": "ngt_busyness",
    "Complexity": "ngt_complexity",
    "Strength": "ngt_strength",
}


#: IBSI features that are identical by definition to another one pyradiomics computes.
IBSI_ALIASES = {"cm_sum_var": "ClusterTendency", "cm_dissimilarity": "DifferenceAverage"}


def pyradiomics_to_ibsi() -> list[tuple[str, str]]:
    """(``original_<class>_<Feature>``, IBSI tag with pyradiomics' aggregation suffix) pairs."""
    out = []
    for cls, table, suffix in (
        ("firstorder", FIRST_ORDER, ""),
        ("shape", SHAPE, ""),
        ("glcm", GLCM, "_3D_avg"),
        ("glrlm", GLRLM, "_3D_avg"),
        ("glszm", GLSZM, "_3D"),
        ("gldm", GLDM, "_3D"),
        ("ngtdm", NGTDM, "_3D"),
    ):
        for name, tag in table.items():
            out.append((f"original_{cls}_{name}", tag + suffix))
    for tag, name in IBSI_ALIASES.items():
        out.append((f"original_glcm_{name}", tag + "_3D_avg"))
    return out
