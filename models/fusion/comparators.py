"""The classical comparators of a fusion study on the fusion network's own folds.

DMDP's claim is "better than traditional machine learning"; EGFR-DLS's is "better than SUVmax". Both
comparisons are only fair on the same cases, the same folds and the same information. Here every
model family of ``radfeat benchmark`` (nested tuning inside each training part,
:func:`models.cv.tune_families`, and the stacked ``auto`` when two or more families are given) and the
SUVmax baseline (:data:`models.zoo.BASELINES`, a logistic model of SUVmax alone) are trained per task
on exactly the outer folds of :func:`models.fusion.cv.fusion_splits`, from the feature-token columns
the network sees. Their out-of-fold predictions have the network's shape
(:class:`~models.fusion.cv.FusionCVResult`: case, fold, score, training threshold), so one table holds
them all (:func:`models.fusion.ablation.ablation_table`: DeLong and McNemar against the full model).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from models.fusion.cv import FusionCVResult, fusion_splits
from models.fusion.data import FusionData

__all__ = ["CLASSICAL_PREFIX", "classical_on_fusion_folds"]

#: Result names: ``classical_<family>``; the SUVmax baseline keeps its own name ``suvmax``.
CLASSICAL_PREFIX = "classical_"


def _name(family: str) -> str:
    return family if family == "suvmax" else CLASSICAL_PREFIX + family


def classical_on_fusion_folds(
    data: FusionData,
    families: Sequence[str],
    *,
    n_splits: int = 5,
    n_repeats: int = 1,
    seed: int = 0,
    inner: tuple[int, int] = (5, 2),
    extra_columns: pd.DataFrame | None = None,
    progress: Callable[[dict], None] | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, FusionCVResult]:
    """Out-of-fold predictions of each family per task on the fusion folds.

    Parameters
    ----------
    data : FusionData
        The fusion cohort; its feature-token columns (every group) are the classical models' inputs.
    families : sequence of str
        Names of :mod:`models.zoo` families and baselines (``suvmax`` needs ``pet_tumour_suv_SUVmax``
        among the columns or in ``extra_columns``).
    inner : (folds, repeats)
        The inner CV that tunes each family inside a training part.
    extra_columns : DataFrame, optional
        More columns in the cases' order of ``data`` (e.g. SUVmax when the PET group is not a token).
    out_dir : path, optional
        The study folder: the predictions are written to ``variants/classical_<key>.csv`` when they
        are done and read back by a rerun with the same data and settings.

    Returns
    -------
    ``{name: FusionCVResult}`` with ``classical_<family>`` (``classical_auto`` included when stacked)
    and ``suvmax``; rows for cases with a known label of each task.
    """
    from models.cv import AUTO, CVConfig, _fold_task
    from models.data import Dataset
    from models.zoo import get_family

    parts = [f for f in (data.features, extra_columns) if f is not None]
    if not parts:
        raise ValueError("classical comparators need feature columns: give --table")
    X = pd.concat([p.reset_index(drop=True) for p in parts], axis=1)
    X = X.loc[:, ~X.columns.duplicated()]
    families = list(dict.fromkeys(families))
    for name in families:
        fam = get_family(name)
        if fam.columns is not None and not fam.columns(list(X.columns)):
            raise ValueError(f"classical comparator {name!r} finds none of its columns in the feature table")
    config = CVConfig(
        n_splits=n_splits,
        n_repeats=n_repeats,
        inner_splits=inner[0],
        inner_repeats=inner[1],
        random_state=seed,
    )
    done = None
    if out_dir is not None:
        done = Path(out_dir) / "variants" / f"classical_{_key(data, X, families, config)}.csv"
        if done.exists():
            if progress:
                progress({"variant": "classical", "skipped": "finished before: read from " + done.name})
            frame = pd.read_csv(done, dtype={"case_id": str})
            return {
                name: FusionCVResult(part.drop(columns="variant").reset_index(drop=True))
                for name, part in frame.groupby("variant", sort=False)
            }
    t0 = time.perf_counter()
    rows: dict[str, list] = {}
    splits = fusion_splits(data, n_splits, n_repeats, seed)
    tasks = []
    for task in data.tasks:
        y = np.asarray(data.labels[task])
        rarest = min(min(int((y[tr] == c).sum()) for c in (0, 1)) for _, _, tr, _ in splits)
        if rarest < inner[0]:
            reason = (
                f"a training part holds {rarest} case(s) of a {task} class; the inner {inner[0]}-fold "
                f"CV needs {inner[0]}"
            )
            if progress:
                progress({"variant": f"classical ({task})", "skipped": reason})
            continue
        tasks.append(task)
    for r, f, tr, te in splits:
        for task in tasks:
            y = np.asarray(data.labels[task]).astype(int)
            known = np.flatnonzero(y >= 0)
            position = {case: i for i, case in enumerate(known)}
            ds = Dataset(X=X.iloc[known].reset_index(drop=True), y=y[known], ids=data.case_ids[known])
            train = np.array([position[c] for c in tr if c in position])
            test = np.array([position[c] for c in te if c in position])
            if len(test) == 0 or len(np.unique(ds.y[train])) < 2:
                continue
            fold = _fold_task(ds, families, config, r, f, train, test, None)
            for family, scores in fold["predictions"].items():
                if family != AUTO and family not in families:
                    continue  # auto_select duplicates a family's scores
                rows.setdefault(_name(family), []).extend(
                    (task, r, f, case, int(label), float(s), float(fold["threshold"]))
                    for case, label, s in zip(fold["test_ids"], fold["y"], scores, strict=True)
                )
            if progress:
                progress({"comparators": "classical", "repeat": r, "fold": f, "task": task})
    seconds = time.perf_counter() - t0
    columns = ["task", "repeat", "fold", "case_id", "y", "score", "threshold"]
    results = {
        name: FusionCVResult(pd.DataFrame(r, columns=columns), seconds=seconds) for name, r in rows.items()
    }
    if done is not None:
        from radfeat.utils.atomic import write_text

        frame = pd.concat([r.predictions.assign(variant=n) for n, r in results.items()], ignore_index=True)
        write_text(frame.to_csv(index=False), done)
    return results


def _key(data: FusionData, X: pd.DataFrame, families: list[str], config) -> str:
    """Hash of what the comparators depend on: cases, labels, feature values, families, folds."""
    import hashlib
    from dataclasses import asdict

    from models.cv import CACHE_PROTOCOL
    from models.fusion.cv import SPLIT_PROTOCOL

    h = hashlib.sha256()
    h.update("|".join(map(str, data.case_ids)).encode())
    for t in data.tasks:
        h.update(t.encode() + np.ascontiguousarray(data.labels[t]).tobytes())
    h.update(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())
    h.update("|".join(X.columns).encode())
    h.update(repr((families, asdict(config), SPLIT_PROTOCOL, CACHE_PROTOCOL)).encode())
    return h.hexdigest()[:12]
