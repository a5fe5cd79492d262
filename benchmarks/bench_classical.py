"""Classical benchmark speed: radfeat's nested CV against the same protocol written naively.

Run: ``python benchmarks/bench_classical.py [--repeats 10] [--jobs 2]``. Both sides run every family
with the same candidate grids on NSCLC-Radiogenomics, outer stratified 5-fold × repeats, inner
stratified 5-fold (×2 for radfeat's steadier inner estimate; the naive side uses the same
``RepeatedStratifiedKFold(5, 2)`` inside ``GridSearchCV``), in one process, and prints wall times and
the ratio. The naive side parallelises inside ``GridSearchCV`` (n_jobs); radfeat over outer folds.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, require_data  # noqa: E402

FAMILIES = ("lr", "svm_linear", "svm_rbf", "rf", "et", "xgb", "knn", "nb", "lda")


def naive(data, repeats: int, jobs: int) -> dict[str, float]:
    """Per family: for each outer fold, GridSearchCV over the family's candidates, refit, predict."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold
    from sklearn.pipeline import Pipeline

    from models.cv import outer_splits
    from models.zoo import get_family

    aucs = {}
    splits = outer_splits(data, 5, repeats, 0)
    for name in FAMILIES:
        fam = get_family(name)
        per_repeat = {}
        for r, f, tr, te in splits:
            # The candidates differ in pipeline structure (selector, k) as well as model parameters,
            # so the grid is a list of whole pipelines: the usual "estimator as a parameter" idiom.
            candidates = [fam.build(p, 0, list(data.X.columns)) for p in fam.grid]
            inner = RepeatedStratifiedKFold(n_splits=5, n_repeats=2, random_state=r * 1000 + f)
            search = GridSearchCV(
                Pipeline([("candidate", candidates[0])]),
                {"candidate": candidates},
                scoring="roc_auc",
                cv=inner,
                n_jobs=jobs,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                search.fit(data.X.iloc[tr], data.y[tr])
            per_repeat.setdefault(r, []).append((te, search.predict_proba(data.X.iloc[te])[:, 1]))
        scores = []
        for folds in per_repeat.values():
            oof = np.zeros(len(data.y))
            for te, p in folds:
                oof[te] = p
            scores.append(roc_auc_score(data.y, oof))
        aucs[name] = float(np.mean(scores))
    return aucs


def main() -> None:
    from models.cv import CVConfig, cross_validate
    from models.data import load_radmlbench

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    data = load_radmlbench(require_data("radmlbench", "datasets", "NSCLC-Radiogenomics.gz"))
    print(
        f"# bench_classical on {machine()}: NSCLC-Radiogenomics, {len(FAMILIES)} families, "
        f"outer 5-fold × {args.repeats}, {args.jobs} jobs"
    )
    t0 = time.perf_counter()
    ours = cross_validate(data, FAMILIES, CVConfig(n_repeats=args.repeats, n_jobs=args.jobs))
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = naive(data, args.repeats, args.jobs)
    t_naive = time.perf_counter() - t0
    summary = ours.summary()["mean_auc"]
    print_table(
        "Wall time, all families",
        ["protocol", "seconds", "ratio"],
        [
            ["radfeat nested CV (parallel over outer folds, cached)", t_ours, 1.0],
            ["naive: GridSearchCV in each outer fold", t_naive, t_naive / t_ours],
        ],
    )
    print_table(
        "Mean outer AUC per family",
        ["family", "radfeat", "naive"],
        [[n, summary[n], plain[n]] for n in FAMILIES],
    )


if __name__ == "__main__":
    main()
