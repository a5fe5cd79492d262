"""What a study leaves on disk: best parameters (JSON), the trial table (CSV, Parquet), figures (PNG)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd

from models.tuning.study import finished_trials

__all__ = ["write_study_artifacts", "best_params"]


def write_study_artifacts(study, outdir: str | Path) -> dict[str, str]:
    """Best parameters (JSON), the trial table (CSV and Parquet), optimisation-history and
    parameter-importance figures (PNG) under ``outdir``; written atomically. Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    from radfeat.utils.atomic import atomic_path, write_text

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    trials = study.trials_dataframe(multi_index=False)
    for suffix, writer in (("csv", lambda d, p: d.to_csv(p, index=False)), ("parquet", _to_parquet)):
        path = outdir / f"trials.{suffix}"
        with atomic_path(path) as tmp:
            writer(trials, tmp)
        paths[f"trials_{suffix}"] = str(path)
    done = [t for t in finished_trials(study) if t.value is not None]
    complete = [t for t in done if t.state.name == "COMPLETE"]
    summary = {
        "study": study.study_name,
        "storage": study.user_attrs.get("storage"),
        "family": study.user_attrs.get("family"),
        "label": study.user_attrs.get("label"),
        "n_complete": len(complete),
        "n_pruned": len(done) - len(complete),
        "best_value": study.best_value if complete else None,
        "best_params": best_params(study) if complete else None,
        "best_trial": study.best_trial.number if complete else None,
        "settings": study.user_attrs.get("settings"),
    }
    write_text(json.dumps(summary, indent=2, default=str), outdir / "best_params.json")
    paths["best_params"] = str(outdir / "best_params.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if complete:
            ax = optuna.visualization.matplotlib.plot_optimization_history(study)
            _save(ax, outdir / "history.png", plt)
            paths["history"] = str(outdir / "history.png")
        if len(complete) >= 2 and len({json.dumps(t.params, sort_keys=True) for t in complete}) >= 2:
            try:
                ax = optuna.visualization.matplotlib.plot_param_importances(study)
            except (RuntimeError, ValueError, ZeroDivisionError):  # e.g. no parameter varied
                ax = None
            if ax is not None:
                _save(ax, outdir / "importance.png", plt)
                paths["importance"] = str(outdir / "importance.png")
    return paths


def _to_parquet(frame: pd.DataFrame, path) -> None:
    frame = frame.copy()
    for col in frame.columns:  # durations and mixed-type params do not round-trip to Arrow as-is
        if frame[col].dtype == object or str(frame[col].dtype).startswith("timedelta"):
            frame[col] = frame[col].astype(str)
    frame.to_parquet(path, index=False)


def _save(ax, path: Path, plt) -> None:
    from radfeat.utils.atomic import atomic_path

    fig = ax.figure if hasattr(ax, "figure") else plt.gcf()
    fig.set_size_inches(7, 4.5)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def best_params(study) -> dict:
    best = study.best_trial
    return dict(best.user_attrs.get("params", best.params))
