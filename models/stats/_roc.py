"""ROC analysis: AUC with DeLong variance (fast midrank algorithm), DeLong tests, coordinates.

Conventions follow R's pROC: ``direction="<"`` means controls score lower than cases and a subject is
**positive iff score >= t**; ``">"`` means positive iff score <= t. The direction is never flipped
silently: ``"auto"`` applies pROC's rule (``"<"`` iff median(controls) <= median(cases)) and the chosen
direction is reported in the result.

References
----------
DeLong, DeLong & Clarke-Pearson (1988), Biometrics 44:837-845. doi:10.2307/2531595
Sun & Xu (2014), IEEE Signal Process Lett 21:1389-1393. doi:10.1109/LSP.2014.2337313
Robin et al. (2011), pROC, BMC Bioinformatics 12:77. doi:10.1186/1471-2105-12-77
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "AUCResult",
    "DeLongTestResult",
    "roc_auc",
    "delong_test",
    "delong_test_unpaired",
    "delong_covariance",
    "roc_coords",
    "partial_auc",
    "resolve_direction",
]


@dataclass(frozen=True)
class AUCResult:
    """ROC AUC with its DeLong variance and normal-theory confidence interval (clipped to [0, 1])."""

    auc: float
    variance: float
    ci_lower: float
    ci_upper: float
    conf_level: float
    n_cases: int
    n_controls: int
    direction: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        pct = round(100 * self.conf_level)
        return f"AUC {self.auc:.3f} ({pct}% CI {self.ci_lower:.3f}–{self.ci_upper:.3f})"


@dataclass(frozen=True)
class DeLongTestResult:
    """DeLong test of two AUCs: ``statistic`` is Z (paired) or D (unpaired, Student t with ``df``)."""

    auc_a: float
    auc_b: float
    difference: float
    statistic: float
    p_value: float
    ci_lower: float
    ci_upper: float
    alternative: str
    paired: bool
    df: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _split(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"y_true and y_score must be 1-D of the same length, got {y.shape} and {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("y_score contains NaN or infinite values; drop or impute them first")
    labels = np.unique(y)
    if not set(labels.tolist()) <= {0, 1}:
        raise ValueError(f"y_true must be binary 0/1 (1 = case), got values {labels.tolist()[:5]}")
    cases, controls = s[y == 1], s[y == 0]
    if cases.size < 2 or controls.size < 2:
        raise ValueError(
            f"DeLong needs at least 2 cases and 2 controls, got {cases.size} cases and "
            f"{controls.size} controls"
        )
    return cases, controls


def resolve_direction(y_true, y_score, direction: str = "<") -> str:
    """Return ``"<"`` or ``">"``; ``"auto"`` uses pROC's median rule."""
    if direction in ("<", ">"):
        return direction
    if direction != "auto":
        raise ValueError(f"direction must be '<', '>' or 'auto', got {direction!r}")
    cases, controls = _split(y_true, y_score)
    return "<" if np.median(controls) <= np.median(cases) else ">"


def _midrank(x: np.ndarray) -> np.ndarray:
    """Midranks (1-based, ties get their average rank) along the last axis."""
    return stats.rankdata(x, method="average", axis=-1)


def _placements(cases: np.ndarray, controls: np.ndarray):
    """Sun & Xu's fast DeLong: AUCs and placement values for k predictors at once.

    ``cases`` is (k, m), ``controls`` is (k, n). Returns auc (k,), v10 (k, m), v01 (k, n).
    """
    m, n = cases.shape[1], controls.shape[1]
    tz = _midrank(np.concatenate([cases, controls], axis=1))
    tx = _midrank(cases)
    ty = _midrank(controls)
    auc = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return auc, v10, v01


def delong_covariance(y_true, *scores, direction: str = "<") -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their DeLong covariance matrix (k, k) for k scores of the same subjects.

    Each score is oriented by ``direction`` (the same for all); placement covariances use the
    (m−1) and (n−1) denominators as pROC does.
    """
    if direction not in ("<", ">"):
        raise ValueError(f"direction must be '<' or '>' here, got {direction!r}")
    sign = 1.0 if direction == "<" else -1.0
    cases, controls = zip(*(_split(y_true, s) for s in scores), strict=True)
    auc, v10, v01 = _placements(sign * np.vstack(cases), sign * np.vstack(controls))
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return auc, s10 / m + s01 / n


def roc_auc(y_true, y_score, *, direction: str = "<", conf_level: float = 0.95) -> AUCResult:
    """ROC AUC with DeLong variance and CI.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 = case, 0 = control.
    y_score : array-like of shape (n_samples,)
        Higher means more likely a case when ``direction="<"``.
    direction : {"<", ">", "auto"}, default="<"
        Never flipped silently; ``"auto"`` follows pROC and is reported in the result.
    conf_level : float, default=0.95

    Raises
    ------
    ValueError
        With fewer than 2 cases or 2 controls, non-binary labels or non-finite scores.
    """
    direction = resolve_direction(y_true, y_score, direction)
    auc, cov = delong_covariance(y_true, y_score, direction=direction)
    var = float(cov[0, 0])
    z = stats.norm.ppf(0.5 + conf_level / 2)
    half = z * np.sqrt(var)
    y = np.asarray(y_true)
    return AUCResult(
        auc=float(auc[0]),
        variance=var,
        ci_lower=float(max(0.0, auc[0] - half)),
        ci_upper=float(min(1.0, auc[0] + half)),
        conf_level=conf_level,
        n_cases=int((y == 1).sum()),
        n_controls=int((y == 0).sum()),
        direction=direction,
    )


def _p_value(stat: float, alternative: str, dist) -> float:
    if alternative == "two-sided":
        return float(2 * dist.sf(abs(stat)))
    if alternative == "greater":
        return float(dist.sf(stat))
    if alternative == "less":
        return float(dist.cdf(stat))
    raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")


def delong_test(
    y_true,
    score_a,
    score_b,
    *,
    direction: str = "<",
    alternative: str = "two-sided",
    conf_level: float = 0.95,
) -> DeLongTestResult:
    """Paired DeLong test of two correlated AUCs (same subjects): Z = Δ / sqrt(v_a + v_b − 2 cov).

    ``alternative="greater"`` tests AUC_a > AUC_b. Identical curves give Z = 0, p = 1.
    """
    direction = resolve_direction(y_true, score_a, direction)
    auc, cov = delong_covariance(y_true, score_a, score_b, direction=direction)
    diff = float(auc[0] - auc[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if var <= 0 or not np.isfinite(var):
        z, p = 0.0, 1.0
        half = 0.0
    else:
        z = diff / np.sqrt(var)
        p = _p_value(z, alternative, stats.norm)
        half = stats.norm.ppf(0.5 + conf_level / 2) * np.sqrt(var)
    return DeLongTestResult(
        float(auc[0]),
        float(auc[1]),
        diff,
        float(z),
        p,
        diff - half,
        diff + half,
        alternative,
        paired=True,
    )


def delong_test_unpaired(
    y_a,
    score_a,
    y_b,
    score_b,
    *,
    direction: str = "<",
    alternative: str = "two-sided",
    conf_level: float = 0.95,
) -> DeLongTestResult:
    """Unpaired DeLong test (independent samples): D = Δ / sqrt(v_a + v_b), Student t p-value.

    df = (v_a + v_b)² / (v_a² / (N_a − 1) + v_b² / (N_b − 1)) with N the number of subjects, as in pROC.
    """
    ra = roc_auc(y_a, score_a, direction=direction)
    rb = roc_auc(y_b, score_b, direction=direction)
    diff = ra.auc - rb.auc
    va, vb = ra.variance, rb.variance
    na, nb = ra.n_cases + ra.n_controls, rb.n_cases + rb.n_controls
    d = diff / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    dist = stats.t(df)
    p = _p_value(d, alternative, dist)
    half = dist.ppf(0.5 + conf_level / 2) * np.sqrt(va + vb)
    return DeLongTestResult(
        ra.auc,
        rb.auc,
        diff,
        float(d),
        p,
        diff - half,
        diff + half,
        alternative,
        paired=False,
        df=float(df),
    )


def _thresholds(scores: np.ndarray) -> np.ndarray:
    """pROC thresholds: -inf, midpoints between consecutive distinct values, +inf."""
    values = np.unique(scores)
    mids = (values[:-1] + values[1:]) / 2.0
    return np.concatenate([[-np.inf], mids, [np.inf]])


def roc_coords(
    y_true, y_score, *, direction: str = "<", thresholds: np.ndarray | None = None
) -> pd.DataFrame:
    """Confusion counts and derived rates at each threshold (pROC's ``coords``).

    With ``direction="<"`` a subject is positive iff score >= threshold; ``">"``: iff score <= threshold.
    Default thresholds are pROC's (−inf, midpoints, +inf), ascending.

    Returns
    -------
    DataFrame with columns threshold, tp, fp, tn, fn, sensitivity, specificity, accuracy, ppv, npv,
    youden (= se + sp, as pROC), closest_topleft ((1−se)² + (1−sp)²), lr_pos, lr_neg.
    """
    direction = resolve_direction(y_true, y_score, direction)
    y = np.asarray(y_true).astype(int)
    s = np.asarray(y_score, dtype=float)
    t = _thresholds(s) if thresholds is None else np.asarray(thresholds, dtype=float)
    if direction == "<":
        positive = s[None, :] >= t[:, None]
    else:
        positive = s[None, :] <= t[:, None]
    tp = (positive & (y == 1)).sum(axis=1).astype(float)
    fp = (positive & (y == 0)).sum(axis=1).astype(float)
    n_pos, n_neg = float((y == 1).sum()), float((y == 0).sum())
    fn, tn = n_pos - tp, n_neg - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        se, sp = tp / n_pos, tn / n_neg
        out = pd.DataFrame(
            {
                "threshold": t,
                "tp": tp,
                "fp": fp,
                "tn": tn,
                "fn": fn,
                "sensitivity": se,
                "specificity": sp,
                "accuracy": (tp + tn) / (n_pos + n_neg),
                "ppv": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
                "npv": np.where(tn + fn > 0, tn / (tn + fn), np.nan),
                "youden": se + sp,
                "closest_topleft": (1 - se) ** 2 + (1 - sp) ** 2,
                "lr_pos": se / (1 - sp),
                "lr_neg": (1 - se) / sp,
            }
        )
    return out


def _roc_points(y_true, y_score, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """Empirical ROC (specificity, sensitivity), ordered by increasing specificity."""
    coords = roc_coords(y_true, y_score, direction=direction)
    if direction == ">":
        coords = coords.iloc[::-1]
    return coords["specificity"].to_numpy(), coords["sensitivity"].to_numpy()


def _area_over(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Trapezoid area of the step-free polyline (x ascending, ties allowed) between x=lo and x=hi."""
    area = 0.0
    for i in range(len(x) - 1):
        x0, x1, y0, y1 = x[i], x[i + 1], y[i], y[i + 1]
        if x1 == x0:
            continue
        a, b = max(lo, x0), min(hi, x1)
        if b <= a:
            continue
        ya = y0 + (y1 - y0) * (a - x0) / (x1 - x0)
        yb = y0 + (y1 - y0) * (b - x0) / (x1 - x0)
        area += (b - a) * (ya + yb) / 2.0
    return area


def partial_auc(
    y_true,
    y_score,
    *,
    bounds: tuple[float, float] = (1.0, 0.9),
    focus: str = "specificity",
    correct: bool = False,
    direction: str = "<",
) -> float:
    """Partial AUC over a specificity (or sensitivity) range, pROC's ``partial.auc``.

    Parameters
    ----------
    bounds : tuple of float, default=(1.0, 0.9)
        The range of the focus measure, in either order.
    focus : {"specificity", "sensitivity"}, default="specificity"
    correct : bool, default=False
        McClish (1989) standardisation: (1 + (pAUC − min) / (max − min)) / 2, so that 0.5 is chance
        and 1 is perfect.
    """
    direction = resolve_direction(y_true, y_score, direction)
    sp, se = _roc_points(y_true, y_score, direction)
    lo, hi = sorted(bounds)
    if focus == "specificity":
        x, y = sp, se
    elif focus == "sensitivity":
        x, y = se, sp
    else:
        raise ValueError(f"focus must be 'specificity' or 'sensitivity', got {focus!r}")
    # The curve falls as x grows: within a vertical segment walk y downwards, so each sloped or
    # horizontal piece joins the lowest point at x_i to the highest at x_{i+1}.
    order = np.lexsort((-y, x))
    area = _area_over(x[order], y[order], lo, hi)
    if not correct:
        return float(area)
    # Chance diagonal (y = 1 − x) and perfect classifier (y = 1) over [lo, hi].
    min_area = (hi - lo) - (hi**2 - lo**2) / 2.0
    max_area = hi - lo
    return float((1 + (area - min_area) / (max_area - min_area)) / 2)
