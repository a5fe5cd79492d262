"""Statistics that match the reference implementations (R pROC, survival, stats; psych::ICC).

ROC/DeLong, bootstrap, threshold metrics, classic tests, ICC, calibration, decision curves and
survival. Every function takes arrays (1 = case) and returns plain numbers or small dataclasses.
"""

from models.stats._bootstrap import BootstrapResult, bootstrap_ci, paired_bootstrap_test
from models.stats._calibration import (
    CalibrationResult,
    brier_score,
    calibration_intercept_slope,
    decision_curve,
    hosmer_lemeshow,
    net_benefit,
    reliability_curve,
)
from models.stats._icc import anova_mean_squares, icc, icc_by_feature, select_stable_features
from models.stats._roc import (
    AUCResult,
    DeLongTestResult,
    delong_covariance,
    delong_test,
    delong_test_unpaired,
    partial_auc,
    resolve_direction,
    roc_auc,
    roc_coords,
)
from models.stats._survival import (
    ConcordanceResult,
    CoxResult,
    LogRankResult,
    cox_ph,
    harrell_c,
    kaplan_meier,
    km_median,
    logrank_test,
)
from models.stats._tests import (
    TestResult,
    chisq_test,
    fisher_test,
    kendall_test,
    kruskal_test,
    mann_whitney_test,
    mcnemar_test,
    spearman_test,
    welch_anova,
    welch_t_test,
    wilcoxon_test,
)
from models.stats._threshold import ThresholdMetrics, median_threshold, threshold_metrics, youden_threshold

__all__ = [
    "AUCResult",
    "BootstrapResult",
    "CalibrationResult",
    "ConcordanceResult",
    "CoxResult",
    "DeLongTestResult",
    "LogRankResult",
    "TestResult",
    "ThresholdMetrics",
    "anova_mean_squares",
    "bootstrap_ci",
    "brier_score",
    "chisq_test",
    "calibration_intercept_slope",
    "cox_ph",
    "decision_curve",
    "delong_covariance",
    "delong_test",
    "delong_test_unpaired",
    "fisher_test",
    "harrell_c",
    "hosmer_lemeshow",
    "icc",
    "icc_by_feature",
    "kaplan_meier",
    "kendall_test",
    "kruskal_test",
    "km_median",
    "logrank_test",
    "mann_whitney_test",
    "mcnemar_test",
    "median_threshold",
    "net_benefit",
    "paired_bootstrap_test",
    "partial_auc",
    "reliability_curve",
    "resolve_direction",
    "roc_auc",
    "roc_coords",
    "select_stable_features",
    "spearman_test",
    "threshold_metrics",
    "welch_anova",
    "welch_t_test",
    "wilcoxon_test",
    "youden_threshold",
]
