"""A reporting checklist filled from what radfeat knows about a study folder.

CLEAR (CheckList for EvaluAtion of Radiomics research; Kocak et al., Insights Imaging 2023;14:75) and
METRICS (METhodological RadiomICs Score; Kocak et al., Insights Imaging 2024;15:8) ask for details that
radfeat records anyway: the feature table's provenance (settings, versions), the model card
(partitioning, tuning, threshold, harmonisation, comparators), the benchmark's ``run.json``, the
evaluation, batch-effect, description and survival reports. :func:`fill_checklist` answers each item it
can with its evidence and the file it came from, and marks the rest as the author's to answer. Item
wording is paraphrased by topic; check the numbering against the published checklists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["StudyEvidence", "gather_evidence", "fill_checklist", "write_checklist", "AUTHOR_ITEMS"]

ANSWERED, PARTLY, AUTHOR = "answered by radfeat", "partly: complete it", "author"
#: Items only the authors can answer (topic, checklists).
AUTHOR_ITEMS = (
    ("Study design (retrospective / prospective), ethics approval and consent", "CLEAR, METRICS"),
    ("Eligibility criteria and patient flow", "CLEAR"),
    ("Reference standard: how the label (e.g. EGFR status, histology) was determined", "CLEAR, METRICS"),
    ("Imaging protocol: scanners, acquisition and reconstruction parameters", "CLEAR, METRICS"),
    ("Segmentation: who segmented, how (manual / semi-automatic), inter-reader agreement", "CLEAR, METRICS"),
    ("Sample size rationale", "CLEAR"),
    ("Clinical utility and intended use of the model", "CLEAR, METRICS"),
    ("Limitations and potential biases", "CLEAR"),
    ("Data availability statement", "CLEAR, METRICS"),
    ("Funding and conflicts of interest", "CLEAR"),
)


@dataclass
class StudyEvidence:
    """What was found in a study folder, with the file of each piece."""

    root: Path
    tables: list[tuple[Path, dict]] = field(default_factory=list)
    cards: list[tuple[Path, dict]] = field(default_factory=list)
    benchmarks: list[tuple[Path, dict]] = field(default_factory=list)
    evaluations: list[tuple[Path, pd.DataFrame]] = field(default_factory=list)
    batch_effects: list[tuple[Path, pd.DataFrame]] = field(default_factory=list)
    descriptions: list[Path] = field(default_factory=list)
    survival: list[Path] = field(default_factory=list)
    fusion: list[Path] = field(default_factory=list)
    robustness: list[tuple[Path, pd.DataFrame]] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)


def _read_csv(path: Path) -> pd.DataFrame:
    """A report table; an empty file (e.g. no cohort with both classes) reads as an empty frame."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def gather_evidence(folder: str | Path, max_depth: int = 4) -> StudyEvidence:
    """Find radfeat outputs under ``folder`` (feature tables with provenance, model folders, benchmark,
    evaluation, batch-effect, description and survival reports)."""
    from radfeat.table import read_provenance

    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"study folder not found: {root}")
    ev = StudyEvidence(root)
    for path in sorted(root.rglob("*")):
        if len(path.relative_to(root).parts) > max_depth or not path.is_file():
            continue
        if any(part.startswith(".") or part.endswith(".work") for part in path.relative_to(root).parts):
            continue
        name = path.name
        if name.endswith(".parquet") and ".features" not in name:
            try:
                prov = read_provenance(path)
            except (OSError, ValueError, KeyError):
                continue
            if prov.get("settings"):
                ev.tables.append((path, prov))
        elif name == "model_card.json":
            ev.cards.append((path, json.loads(path.read_text())))
        elif name == "run.json":
            run = json.loads(path.read_text())
            if run.get("command") == "benchmark":
                ev.benchmarks.append((path, run))
        elif name == "metrics.csv" and (path.parent / "comparisons.csv").is_file():
            ev.evaluations.append((path, _read_csv(path)))
        elif name == "summary.csv" and (path.parent / "pca.png").is_file():
            ev.batch_effects.append((path, _read_csv(path)))
        elif name.startswith("table1_") and name.endswith(".csv"):
            ev.descriptions.append(path)
        elif name == "interaction.csv" or (name == "logrank.csv" and (path.parent / "cox.csv").is_file()):
            if path.parent not in ev.survival:
                ev.survival.append(path.parent)
        elif name == "summary.csv" and (path.parent / "robust.csv").is_file():
            ev.robustness.append((path, _read_csv(path)))
        elif name == "results.csv" and (path.parent / "variants").is_dir():
            ev.fusion.append(path)
    return ev


def _item(topic, checklists, status, answer, evidence="") -> dict:
    return {"item": topic, "checklists": checklists, "status": status, "answer": answer, "evidence": evidence}


def _settings_items(ev: StudyEvidence) -> list[dict]:
    if not ev.tables:
        return [
            _item(t, c, AUTHOR, "no radfeat feature table with provenance found")
            for t, c in (
                ("Feature extraction software and version", "CLEAR, METRICS"),
                ("Image pre-processing: resampling and interpolation", "CLEAR, METRICS"),
                ("Intensity discretisation", "CLEAR, METRICS"),
            )
        ]
    path, prov = ev.tables[0]
    s, v, where = prov["settings"], prov.get("versions", {}), ev.rel(path)
    mods = [m for m in ("ct", "pet") if m in s]
    items = [
        _item(
            "Feature extraction software and version",
            "CLEAR, METRICS",
            ANSWERED,
            f"radfeat {v.get('radfeat')} with pyradiomics (pyradiomics-bhklab "
            f"{v.get('pyradiomics-bhklab')}), "
            f"SimpleITK {v.get('SimpleITK')}, Python {v.get('python')}; settings hash "
            f"{prov.get('settings_hash')}",
            where,
        ),
        _item(
            "Image pre-processing: resampling and interpolation",
            "CLEAR, METRICS",
            ANSWERED,
            "; ".join(
                f"{m.upper()} resampled to {s[m]['setting'].get('resampledPixelSpacing')} mm with "
                f"{s[m]['setting'].get('interpolator')}"
                for m in mods
            ),
            where,
        ),
        _item(
            "Intensity discretisation",
            "CLEAR, METRICS",
            ANSWERED,
            "; ".join(
                f"{m.upper()}: fixed bin width {s[m]['setting'].get('binWidth')}"
                + (" HU" if m == "ct" else " SUV")
                if "binWidth" in s[m]["setting"]
                else f"{m.upper()}: fixed bin count {s[m]['setting'].get('binCount')}"
                for m in mods
            ),
            where,
        ),
        _item(
            "Image filters and feature classes",
            "CLEAR",
            ANSWERED,
            "; ".join(
                f"{m.upper()}: images {', '.join(s[m].get('imageType', {}))}; classes "
                f"{', '.join(s[m].get('featureClass', {}))}"
                for m in mods
            )
            + f"; {prov.get('n_extracted')} of {prov.get('n_cases')} cases extracted",
            where,
        ),
    ]
    if "pet" in s:
        run = s.get("run", {})
        desc = s.get("pet_descriptors", {})
        items.append(
            _item(
                "PET quantification (SUV) and metabolic parameters",
                "CLEAR",
                ANSWERED,
                f"SUV{run.get('suv_variant', 'bw')}; MTV at {desc.get('mtv_percent_of_max')} % of SUVmax "
                "and at "
                f"SUV ≥ {desc.get('mtv_absolute_suv')}; SUVpeak over a {desc.get('peak_sphere_ml')} mL "
                "sphere",
                where,
            )
        )
    if s.get("habitats"):
        h = s["habitats"]
        items.append(
            _item(
                "Sub-region (habitat) analysis",
                "CLEAR",
                ANSWERED,
                f"{h.get('method')} clustering of {h.get('mode')} supervoxels, k chosen in "
                f"{h.get('k_range')}, "
                f"seed {h.get('random_state')}",
                where,
            )
        )
    items.append(
        _item(
            "Segmentation masks",
            "CLEAR, METRICS",
            PARTLY,
            f"masks from the cohort manifest ({prov.get('manifest')}), label "
            f"{s.get('run', {}).get('mask_label')}; "
            "say who drew them and how",
            where,
        )
    )
    items.append(
        _item(
            "IBSI compliance",
            "CLEAR, METRICS",
            PARTLY,
            "features computed by pyradiomics, which follows IBSI definitions with documented deviations; "
            "radfeat's "
            "test suite reproduces the 103 of 482 IBSI 1 digital-phantom reference values pyradiomics "
            "expresses "
            "(tests/test_ibsi.py); state the deviations that matter for your features",
            "tests/test_ibsi.py",
        )
    )
    return items


def _model_items(ev: StudyEvidence) -> list[dict]:
    cards = [(p, c) for p, c in ev.cards if c.get("kind") != "fusion"] or ev.cards
    bench = ev.benchmarks[0] if ev.benchmarks else None
    items = []
    if cards:
        path, card = cards[0]
        where = ev.rel(path)
        cv = card.get("cv", {})
        tr = card.get("training", {})
        items += [
            _item(
                "Data partitioning",
                "CLEAR, METRICS",
                ANSWERED,
                f"model locked on cohort(s) {', '.join(tr.get('cohorts') or ['all'])} ({tr.get('n_cases')} "
                "cases, "
                f"{tr.get('n_positive')} positive); other cohorts never read while fitting; internal "
                "estimate by "
                f"{cv.get('outer')} repeated stratified CV with {cv.get('inner')} inner CV, seed "
                f"{cv.get('seed')}",
                where,
            ),
            _item(
                "Feature selection and dimensionality reduction inside the cross-validation",
                "CLEAR, METRICS",
                ANSWERED,
                "missingness filter, median imputation, zero-variance filter, standardisation, |r| > 0.9 "
                "correlation filter and the tuned selector are pipeline steps fitted on each training fold "
                "only "
                f"(nested CV, tuner {cv.get('tuner')})",
                where,
            ),
            _item(
                "Model and hyper-parameter tuning",
                "CLEAR, METRICS",
                ANSWERED,
                f"{card.get('family')}: "
                + ", ".join(f"{m['family']} × {m['weight']:.2f}" for m in card.get("members", []))
                + f"; tuned by {cv.get('tuner')} on the inner CV over {', '.join(cv.get('families') or [])}",
                where,
            ),
            _item(
                "Class imbalance",
                "CLEAR",
                ANSWERED,
                f"prevalence {tr.get('prevalence', float('nan')):.2f}; no re-weighting or resampling "
                "(probabilities "
                "on the training prevalence scale); stratified folds",
                where,
            ),
            _item(
                "Operating threshold",
                "CLEAR",
                ANSWERED,
                f"{card.get('threshold', float('nan')):.4f} by rule {card.get('threshold_rule')} on "
                "out-of-fold training "
                "scores",
                where,
            ),
        ]
        comps = card.get("comparators") or []
        items.append(
            _item(
                "Comparison with a baseline (SUVmax, clinical model)",
                "CLEAR, METRICS",
                ANSWERED if comps else AUTHOR,
                ", ".join(f"{c['name']} (locked at fit time)" for c in comps) or "no comparator declared",
                where,
            )
        )
        harm = card.get("harmonisation")
        items.append(
            _item(
                "Harmonisation of multi-centre data",
                "CLEAR, METRICS",
                ANSWERED,
                (
                    f"{harm['method']} across {harm['batch_column']} batches {harm['training_batches']}, "
                    "learned in "
                    f"{harm['fitted_in']}"
                    if harm
                    else "no harmonisation applied (radfeat fit --harmonise not used)"
                ),
                where,
            )
        )
        items.append(
            _item(
                "Model availability",
                "CLEAR, METRICS",
                ANSWERED,
                f"model folder {ev.rel(path.parent)} (fingerprint {card.get('fingerprint')}; skops / "
                "XGBoost JSON "
                "that executes no code on load, SHA-256 of every file, model card)",
                where,
            )
        )
    elif bench:
        path, run = bench
        items.append(
            _item(
                "Feature selection and dimensionality reduction inside the cross-validation",
                "CLEAR, METRICS",
                ANSWERED,
                f"radfeat benchmark, {'nested ' if run.get('nested') else ''}{run.get('cv')} CV"
                + (f" with {run.get('inner')} inner CV" if run.get("inner") else "")
                + "; every filter and selector fitted on training folds only",
                ev.rel(path),
            )
        )
    else:
        items.append(
            _item("Data partitioning", "CLEAR, METRICS", AUTHOR, "no model card or benchmark run found")
        )
    if bench and not any(i["item"].startswith("Harmonisation") for i in items):
        path, run = bench
        harm = run.get("harmonise")
        items.append(
            _item(
                "Harmonisation of multi-centre data",
                "CLEAR, METRICS",
                ANSWERED,
                f"ComBat across {harm['batch']} inside every training fold"
                if harm
                else "no harmonisation applied",
                ev.rel(path),
            )
        )
    if ev.batch_effects and not ev.batch_effects[0][1].empty:
        path, summary = ev.batch_effects[0]
        s = summary.set_index("stage")
        key = "location effect (q < 0.05)"
        items.append(
            _item(
                "Batch effect assessed",
                "METRICS",
                ANSWERED,
                f"{s.loc['before', key]:.0%} of features differ across batches before ComBat, "
                f"{s.loc['after ComBat', key]:.0%} after (Kruskal–Wallis, BH FDR)",
                ev.rel(path),
            )
        )
    return items


def _evaluation_items(ev: StudyEvidence) -> list[dict]:
    if not ev.evaluations:
        return [
            _item(
                "External validation",
                "CLEAR, METRICS",
                AUTHOR,
                "no evaluation report (radfeat evaluate) found",
            ),
            _item("Calibration", "CLEAR, METRICS", AUTHOR, "no evaluation report found"),
        ]
    path, m = ev.evaluations[0]
    where = ev.rel(path)
    if m.empty or "cohort" not in m.columns:
        return [
            _item(
                "External validation",
                "CLEAR, METRICS",
                PARTLY,
                "the evaluation has no cohort with both classes",
                where,
            ),
            _item("Calibration", "CLEAR, METRICS", PARTLY, "not estimable", where),
        ]
    model = m[m["model"] == "model"] if "model" in m.columns else m
    held = model[~model.get("apparent", pd.Series(False, index=model.index)).astype(bool)]
    held = held[held["cohort"] != "all held-out cases"] if "cohort" in held.columns else held
    rows = [
        f"{r.cohort}: n {int(r.n)}, AUC {r.auc:.3f} ({r.auc_ci_low:.3f}–{r.auc_ci_high:.3f})"
        for r in held.itertuples()
        if pd.notna(getattr(r, "auc", None))
    ]
    calib = [
        f"{r.cohort}: Brier {r.brier:.3f}, calibration intercept {r.calibration_intercept:.2f}, slope "
        f"{r.calibration_slope:.2f}"
        for r in held.itertuples()
        if pd.notna(getattr(r, "calibration_slope", None))
    ]
    return [
        _item(
            "External validation",
            "CLEAR, METRICS",
            ANSWERED if rows else PARTLY,
            "; ".join(rows) or "no held-out cohort with both classes",
            where,
        ),
        _item(
            "Performance metrics with uncertainty",
            "CLEAR, METRICS",
            ANSWERED,
            "AUC with DeLong 95 % CI; ACC/SEN/SPEC/PPV/NPV with Wilson CIs at the locked threshold; paired "
            "DeLong "
            "and McNemar against the comparators",
            where,
        ),
        _item(
            "Calibration",
            "CLEAR, METRICS",
            ANSWERED if calib else PARTLY,
            "; ".join(calib) or "not estimable",
            where,
        ),
        _item(
            "Clinical utility (decision curve)",
            "CLEAR",
            PARTLY,
            "decision curves and net benefit at the locked threshold in the evaluation report; interpret "
            "them",
            where,
        ),
    ]


def fill_checklist(ev: StudyEvidence) -> pd.DataFrame:
    """The checklist as a table: item, checklists, status, answer, evidence (file)."""
    import radfeat

    items = _settings_items(ev) + _model_items(ev) + _evaluation_items(ev)
    if ev.descriptions:
        items.append(
            _item(
                "Cohort characteristics (Table 1)",
                "CLEAR",
                ANSWERED,
                "radfeat describe",
                ev.rel(ev.descriptions[0]),
            )
        )
    if ev.survival:
        items.append(
            _item(
                "Survival analysis of the model score",
                "CLEAR",
                ANSWERED,
                "Kaplan–Meier by locked threshold, Cox HR with CI, Harrell's C (radfeat survival)",
                ev.rel(ev.survival[0]),
            )
        )
    if ev.fusion:
        items.append(
            _item(
                "Deep learning: architecture, training and ablations",
                "CLEAR",
                PARTLY,
                "radfeat train: fold results and ablation variants; describe the architecture choices",
                ev.rel(ev.fusion[0]),
            )
        )
    if ev.robustness and not ev.robustness[0][1].empty:
        path, summary = ev.robustness[0]
        total = summary.iloc[-1]
        stable = [c for _, c in ev.cards if (c.get("table") or {}).get("stable_features")]
        kept = stable[0]["table"]["stable_features"]["n_kept"] if stable else None
        items.append(
            _item(
                "Feature robustness / reproducibility (test–retest, perturbation)",
                "CLEAR, METRICS",
                ANSWERED,
                f"{int(total.robust)} of {int(total.features)} features robust (ICC(1,1), radfeat "
                "robustness); "
                + (
                    f"the model uses only the {kept} robust ones"
                    if stable
                    else "the model does not restrict to them (--stable-features)"
                ),
                ev.rel(path),
            )
        )
    else:
        items.append(
            _item(
                "Feature robustness / reproducibility (test–retest, perturbation)",
                "CLEAR, METRICS",
                AUTHOR,
                "no robustness analysis found in the folder (radfeat robustness)",
            )
        )
    items.append(
        _item(
            "Code availability",
            "CLEAR, METRICS",
            PARTLY,
            f"radfeat {radfeat.__version__} is open source (BSD-3-Clause); cite its version and share your "
            "commands",
        )
    )
    items.append(
        _item(
            "Reproducibility: seeds and versions",
            "CLEAR",
            ANSWERED if ev.tables or ev.cards else AUTHOR,
            "every random step seeded; versions and fingerprints in the table provenance and model card"
            if ev.tables or ev.cards
            else "no provenance found",
            ev.rel(ev.tables[0][0]) if ev.tables else (ev.rel(ev.cards[0][0]) if ev.cards else ""),
        )
    )
    items += [_item(topic, lists, AUTHOR, "the authors' to answer") for topic, lists in AUTHOR_ITEMS]
    return pd.DataFrame(items)


def write_checklist(
    table: pd.DataFrame, out_dir, *, title: str = "Reporting checklist (CLEAR / METRICS)"
) -> dict:
    """Write ``checklist.csv``, ``checklist.md`` and ``checklist.html``."""
    import html

    from radfeat.utils.atomic import write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "checklist.csv", "markdown": out / "checklist.md", "html": out / "checklist.html"}
    write_text(table.to_csv(index=False), paths["csv"])
    counts = table["status"].value_counts()
    intro = (
        f"{counts.get(ANSWERED, 0)} items answered from the study's files, {counts.get(PARTLY, 0)} partly, "
        f"{counts.get(AUTHOR, 0)} for the authors. CLEAR: Kocak et al., Insights Imaging 2023;14:75. "
        "METRICS: "
        "Kocak et al., Insights Imaging 2024;15:8. Items are paraphrased by topic: map them to the published "
        "item numbers."
    )
    write_text(f"# {title}\n\n{intro}\n\n{table.to_markdown(index=False)}\n", paths["markdown"])
    write_text(
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>{table.to_html(index=False)}</body></html>",
        paths["html"],
    )
    return paths
