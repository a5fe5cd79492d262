"""Stacked combinations of model families learned on inner out-of-fold predictions (``auto``).

The Super Learner (van der Laan, Polley & Hubbard 2007) fits a meta-learner on the cross-validated
predictions of every candidate and combines them with its weights. Here the candidates are the
inner-tuned families of one outer training part, their inputs the inner out-of-fold probabilities
(never an outer test case), and the combination a convex weighting of probabilities, so the ensemble
stays a probability on the training-prevalence scale. Rules:

* ``nnls``: non-negative least squares of the labels on the candidates' probabilities, weights
  normalised to sum to 1 (SuperLearner's ``method.NNLS``);
* ``nnloglik``: non-negative weights on the logit scale minimising the binomial log-likelihood
  (SuperLearner's ``method.NNloglik``), normalised;
* ``hill_climb``: greedy forward selection with replacement that maximises the AUC of the running mean
  (Caruana et al. 2004, "Ensemble selection from libraries of models"), weights = selection counts;
* ``mean``: the plain average of all candidates (no learning; the reference point);
* ``guarded_vote`` (default): an equal-weight vote of a prior pair of complementary families (a
  regularised logistic regression and gradient boosting: additive and interaction-capturing), in
  which a member is replaced by the inner-CV best family only when the paired DeLong test on the
  inner out-of-fold predictions finds the member significantly worse (one-sided α = 0.05). The vote
  adapts where a prior member clearly fails on a table and otherwise does not move.

Why the default learns so little: on radiomics tables of 60–300 cases the inner out-of-fold AUCs of
the families differ by less than their noise, and the best candidate of each family is chosen on the
very predictions the weights would be learned from. Mean outer AUC over 10 repeats of outer 5-fold
× inner 5-fold × 2 nested CV, all nine families, the same cached folds for every rule
(``benchmarks/bench_quality_radmlbench.py``, 2-core x86_64):

===================  ============  =====  ========  ==========  =====  ======================
table                guarded_vote  nnls   nnloglik  hill_climb  mean   best single family
===================  ============  =====  ========  ==========  =====  ======================
NSCLC-Radiogenomics  0.610         0.531  0.539     0.546       0.585  xgb 0.606
LNDb                 0.830         0.826  0.829     0.823       0.826  xgb 0.839
Hosny2018A           0.587         0.572  0.576     0.575       0.579  xgb 0.582
QIN-HEADNECK         0.406         0.467  0.448     0.470       0.440  nb 0.520 (no signal)
===================  ============  =====  ========  ==========  =====  ======================

The learned rules lose on every table with signal; they win only on QIN-HEADNECK, where no family
has signal and every AUC is noise around chance. A combination that needs significant evidence to
move keeps the vote's robustness and still drops a member that fails.

All rules are pure functions of ``(oof, y)``; ties prefer the simpler family
(:data:`models.cv.COMPLEXITY` order given by the caller).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["STACKING_RULES", "DEFAULT_RULE", "stacking_weights", "combine"]

STACKING_RULES = ("guarded_vote", "nnls", "nnloglik", "hill_climb", "mean")
DEFAULT_RULE = "guarded_vote"
#: The prior members of ``guarded_vote``.
PRIOR_MEMBERS = ("lr", "xgb")
#: One-sided z of the paired DeLong test a replacement needs (α = 0.05).
REPLACE_Z = 1.645
#: Greedy steps of ``hill_climb`` (Caruana et al. use ~100 on large libraries; 25 give weights in 4 % steps).
HILL_CLIMB_STEPS = 25
_EPS = 1e-6


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from scipy.stats import rankdata

    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return 0.5
    r = rankdata(s)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _normalise(w: np.ndarray) -> np.ndarray:
    w = np.clip(np.asarray(w, float), 0, None)
    total = w.sum()
    return w / total if total > 0 else np.full(len(w), 1.0 / len(w))


def stacking_weights(
    oof: Mapping[str, Sequence[float]], y: Sequence[int], rule: str = DEFAULT_RULE
) -> dict[str, float]:
    """Convex weights (summing to 1) of the candidates, learned on their out-of-fold probabilities.

    Parameters
    ----------
    oof : mapping family → array of shape (n_cases,)
        Out-of-fold probability of the positive class of each candidate, in the caller's order of
        preference (simplest first: ties go to earlier names).
    y : array of shape (n_cases,)
        0/1 labels of the same cases.
    rule : one of :data:`STACKING_RULES`
    """
    if rule not in STACKING_RULES:
        raise ValueError(f"stacking rule must be one of {STACKING_RULES}, got {rule!r}")
    names = list(oof)
    if not names:
        raise ValueError("no candidate to combine")
    P = np.column_stack([np.asarray(oof[n], float) for n in names])
    y = np.asarray(y, int)
    if P.shape[0] != len(y):
        raise ValueError(f"{P.shape[0]} out-of-fold predictions for {len(y)} labels")
    if len(names) == 1 or rule == "mean":
        w = np.full(len(names), 1.0 / len(names))
    elif rule == "guarded_vote":
        w = _guarded_vote(names, P, y)
    elif rule == "nnls":
        from scipy.optimize import nnls

        w = _normalise(nnls(P, y.astype(float))[0])
    elif rule == "nnloglik":
        w = _nnloglik(P, y)
    else:
        w = _hill_climb(P, y)
    return {n: float(v) for n, v in zip(names, w, strict=True)}


def _guarded_vote(names: list[str], P: np.ndarray, y: np.ndarray) -> np.ndarray:
    from models.stats import delong_test

    auc = [_auc(y, P[:, j]) for j in range(len(names))]
    order = sorted(range(len(names)), key=lambda j: -auc[j])  # stable: simpler first on ties
    best = order[0]
    members = [names.index(m) for m in PRIOR_MEMBERS if m in names]
    for j in order:  # fewer than two prior members benchmarked: the inner-best others join
        if len(members) >= 2:
            break
        if j not in members:
            members.append(j)
    chosen = []
    for j in members:
        replace = False
        if best not in members:
            try:
                replace = delong_test(y, P[:, best], P[:, j]).statistic >= REPLACE_Z
            except ValueError:  # identical or degenerate predictions
                replace = False
        chosen.append(best if replace else j)
    w = np.zeros(len(names))
    for j in chosen:
        w[j] += 1.0 / len(chosen)
    return w


def _nnloglik(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize

    Z = np.log(np.clip(P, _EPS, 1 - _EPS) / np.clip(1 - P, _EPS, 1 - _EPS))

    def loss(w):
        eta = Z @ w
        # log(1 + e^eta) − y·eta, and its gradient
        value = np.logaddexp(0, eta).sum() - (y * eta).sum()
        grad = Z.T @ (1 / (1 + np.exp(-eta)) - y)
        return value, grad

    start = np.full(P.shape[1], 1.0 / P.shape[1])
    fit = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * P.shape[1])
    return _normalise(fit.x)


def _hill_climb(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    counts = np.zeros(P.shape[1])
    total = np.zeros(P.shape[0])
    for step in range(HILL_CLIMB_STEPS):
        # first index wins ties (the simpler family)
        scores = [_auc(y, (total + P[:, j]) / (step + 1)) for j in range(P.shape[1])]
        j = int(np.argmax(scores))
        counts[j] += 1
        total += P[:, j]
    return counts / counts.sum()


def combine(predictions: Mapping[str, Sequence[float]], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted sum of the candidates' probabilities (weights from :func:`stacking_weights`)."""
    used = [n for n, w in weights.items() if w > 0]
    missing = [n for n in used if n not in predictions]
    if missing:
        raise ValueError(f"no predictions of the weighted candidate(s) {missing}")
    return np.sum([weights[n] * np.asarray(predictions[n], float) for n in used], axis=0)
