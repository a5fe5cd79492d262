"""A locked model as a folder that can be moved, trusted and checked.

```
model/
  model_card.json   label, positive class, features in order, members and weights, threshold and rule,
                    comparators, training cohort, CV estimate, the feature table's settings (hash)
                    and habitat-model fingerprint, library versions, SHA-256 of every file, fingerprint
  model_card.md     the same for a reader
  members/00_lr.skops             a scikit-learn pipeline (skops: no code runs on load)
  members/01_xgb.skops + .xgb.json   preprocessing (skops) + the booster in XGBoost's own JSON
  comparators/suvmax.skops
  habitat_model/    the habitat model the training table's habitat features came from (when any)
```

Never pickle: skops files are loaded with an explicit list of trusted types
(:data:`TRUSTED_TYPES`, radfeat's own transformers and the scikit-learn internals they contain); a file
naming any other type is refused. The card's SHA-256 of every file and the fingerprint (hash of the
card's content) make a modified folder fail to load, naming the file. The folder holds no patient
identifier, except the training case ids inside a copied habitat model. Writes are atomic: the
folder is built beside the target and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from models.lifecycle.locked import Comparator, LockedModel, Member
from radfeat.utils.hashing import file_digest, stable_hash

__all__ = [
    "ModelFolderError",
    "TRUSTED_TYPES",
    "CARD_VERSION",
    "save_model",
    "write_model_folder",
    "load_model",
    "check_table",
]

CARD_VERSION = 1
#: Types skops does not trust by default that a radfeat pipeline may contain. Anything else is refused.
TRUSTED_TYPES = (
    "models.harmonise.ComBatHarmoniser",
    "models.selection.CorrelationFilter",
    "models.selection.KeepColumns",
    "models.selection.L1Selector",
    "models.selection.MRMRSelector",
    "models.selection.MissingnessFilter",
    "models.selection.ModelSelector",
    "models.selection.UnivariateSelector",
    "models.zoo.PlattSVC",
    "numpy.dtype",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.tree._tree.Tree",
)
CARD = "model_card.json"


def card_fingerprint(card: dict) -> str:
    """Content hash of a model card (its ``fingerprint`` and ``created`` time left out, so the same data,
    settings and seed give the same fingerprint); it covers every file's SHA-256."""
    return stable_hash({k: v for k, v in card.items() if k not in ("fingerprint", "created")})


class ModelFolderError(ValueError):
    """A model folder that is missing, modified, of an unknown version or names untrusted types."""


def _versions() -> dict[str, str]:
    from radfeat.utils.versions import library_versions

    return library_versions("radfeat", "scikit-learn", "xgboost", "numpy", "scipy", "pandas", "skops")


def _canonical_skops(data: bytes) -> bytes:
    """The same skops archive with reproducible bytes: object ids (memory addresses) renumbered in
    schema order, array files named after them, entries sorted and time-stamped 1980-01-01, so that the
    same fitted model always gives the same file and the same fingerprint."""
    import io
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(source.read("schema.json"))
    ids: dict[int, int] = {}

    def walk(node):
        if isinstance(node, dict):
            if "__id__" in node:
                node["__id__"] = ids.setdefault(node["__id__"], len(ids))
            for key, value in node.items():
                if key == "file" and isinstance(value, str) and value.endswith(".npy"):
                    old = int(value[:-4])
                    node[key] = f"{ids.setdefault(old, len(ids)):06d}.npy"
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    renamed = {}
    for info in source.infolist():
        if info.filename == "schema.json":
            continue
        old = int(info.filename[:-4])
        if old not in ids:
            raise ValueError(f"skops archive: {info.filename} is not referenced by its schema")
        renamed[f"{ids[old]:06d}.npy"] = (source.read(info), info.compress_type)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        entries = {
            **renamed,
            "schema.json": (json.dumps(schema, sort_keys=True).encode(), zipfile.ZIP_DEFLATED),
        }
        for name in sorted(entries):
            payload, compression = entries[name]
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            target.writestr(info, payload)
    return buffer.getvalue()


def _dump(obj, path: Path) -> None:
    import skops.io as sio

    path.write_bytes(_canonical_skops(sio.dumps(obj)))


def _save_pipeline(pipeline, folder: Path, stem: str) -> list[str]:
    """Write a pipeline as ``stem.skops`` (+ ``stem.xgb.json`` when its model is XGBoost)."""
    from sklearn.pipeline import Pipeline

    files = []
    model = pipeline.steps[-1][1]
    if type(model).__module__.startswith("xgboost"):
        model.get_booster().save_model(str(folder / f"{stem}.xgb.json"))
        files.append(f"{stem}.xgb.json")
        pre = Pipeline(pipeline.steps[:-1]) if len(pipeline.steps) > 1 else None
        _dump(
            {"pre": pre, "xgb_params": json.dumps(model.get_params(), default=str)}, folder / f"{stem}.skops"
        )
    else:
        _dump({"pre": None, "pipeline": pipeline}, folder / f"{stem}.skops")
    files.insert(0, f"{stem}.skops")
    return files


def _load_pipeline(folder: Path, stem: str):
    import skops.io as sio

    path = folder / f"{stem}.skops"
    untrusted = sio.get_untrusted_types(file=path)
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise ModelFolderError(
            f"{path}: names type(s) radfeat does not trust: {', '.join(refused)}. The file was not "
            "written by radfeat or was modified; refit the model (`radfeat fit`)"
        )
    payload = sio.load(path, trusted=list(untrusted))
    if "pipeline" in payload:
        return payload["pipeline"]
    from sklearn.pipeline import Pipeline
    from xgboost import XGBClassifier

    params = json.loads(payload["xgb_params"])
    model = XGBClassifier(**{k: v for k, v in params.items() if v is not None and k != "missing"})
    model.load_model(str(folder / f"{stem}.xgb.json"))
    steps = list(payload["pre"].steps) if payload["pre"] is not None else []
    return Pipeline([*steps, ("model", model)])


def _markdown(card: dict) -> str:
    cv = card["cv_estimate"]
    tr = card["training"]
    sd = f" ± {cv['sd_auc']:.3f}" if cv.get("sd_auc") is not None else ""
    lines = [
        f"# Model card: `{card['label']}` = `{card['positive']}`",
        "",
        f"- fingerprint: `{card['fingerprint']}` (created {card['created']}, radfeat "
        f"{card['versions'].get('radfeat')})",
        f"- model: `{card['family']}` — "
        + ", ".join(f"{m['family']} × {m['weight']:.2f}" for m in card["members"]),
        f"- training cohort: {tr['n_cases']} cases, {tr['n_positive']} positive (prevalence "
        f"{tr['prevalence']:.2f})" + (f", cohort(s) {', '.join(tr['cohorts'])}" if tr.get("cohorts") else ""),
        f"- CV estimate on the training cohort ({card['cv']['outer']} outer × {card['cv']['inner']} inner, "
        f"{card['cv']['tuner']}): AUC {cv['mean_auc']:.3f}{sd} over repeats; case-averaged "
        f"{cv['auc_oof']:.3f} (95 % DeLong CI {cv['auc_ci_low']:.3f}–{cv['auc_ci_high']:.3f})",
        f"- operating threshold: {card['threshold']:.4f} (rule `{card['threshold_rule']}`, from the "
        "out-of-fold training scores)",
        f"- features: {len(card['features'])} input columns, {len(card['required_features'])} used "
        "(a case missing one of those is not scored)",
        f"- feature table settings hash: `{card['table'].get('settings_hash')}`; habitat model: "
        f"`{(card['table'].get('habitat_model') or {}).get('fingerprint')}`",
    ]
    harm = card.get("harmonisation")
    if harm:
        lines.append(
            f"- harmonisation: {harm['method']} across `{harm['batch_column']}` batches "
            + ", ".join(f"{b} ({n})" for b, n in harm["training_batches"].items())
            + (f", protecting {', '.join(harm['protected'])}" if harm.get("protected") else "")
            + "; learned on the training cases, a new batch is estimated from its own cases (at least "
            f"{harm['min_new_batch']})"
        )
    if card["comparators"]:
        lines += ["", "## Comparators declared at fit time", ""]
        for c in card["comparators"]:
            e = c["cv_estimate"]
            lines.append(
                f"- `{c['name']}` ({c['title']}; columns {', '.join(c['columns'])}): threshold "
                f"{c['threshold']:.4f}; CV AUC {e['auc_oof']:.3f} "
                f"({e['auc_ci_low']:.3f}–{e['auc_ci_high']:.3f})"
            )
    lines += ["", "## Library versions", ""] + [f"- {k} {v}" for k, v in card["versions"].items()]
    return "\n".join(lines) + "\n"


def write_model_folder(
    folder: str | Path,
    build: Callable[[Path], dict],
    markdown: Callable[[dict], str],
    table_provenance: dict | None = None,
) -> dict:
    """Write a model folder atomically and return its card.

    ``build(tmp)`` writes the model's files into a temporary folder beside ``folder`` and returns the
    card's model-specific part. The training table's habitat model is copied in (``predict`` applies
    it to a new cohort's manifest), the card gets the format version, creation time, the table's
    settings (with hash) and habitat model, the SHA-256 of every file and its fingerprint; then the
    temporary folder replaces ``folder`` by rename (a failure leaves the old folder as it was).
    """
    from radfeat.runner import utc_now

    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        card = build(tmp)
        prov = table_provenance or {}
        habitat = prov.get("habitat_model") or {}
        if habitat.get("path") and Path(habitat["path"]).is_dir():
            shutil.copytree(habitat["path"], tmp / "habitat_model")
        card = {
            "radfeat_model_card_version": CARD_VERSION,
            "created": utc_now(),
            **card,
            "table": {
                "settings_hash": prov.get("settings_hash"),
                "settings": prov.get("settings"),
                "habitat_model": prov.get("habitat_model"),
                **(card.get("table") or {}),
            },
        }
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        card["files"] = {f: file_digest(tmp / f) for f in files}
        card["fingerprint"] = card_fingerprint(card)
        (tmp / CARD).write_text(json.dumps(card, indent=2, default=str))
        (tmp / "model_card.md").write_text(markdown(card))
        if target.exists():
            old = target.with_name(f".{target.name}.old.{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return card


def save_model(model: LockedModel, folder: str | Path, table_provenance: dict | None = None) -> Path:
    """Write ``model`` into ``folder`` (replaced atomically); fill ``model.card``; return the folder.

    ``table_provenance``: the training table's radfeat provenance (settings and their hash, habitat
    model); the card records them so that :func:`check_table` can refuse another table.
    """

    def build(tmp: Path) -> dict:
        (tmp / "members").mkdir()
        members = []
        for i, m in enumerate(model.members):
            stem = f"{i:02d}_{m.family}"
            files = _save_pipeline(m.pipeline, tmp / "members", stem)
            members.append(
                {
                    "family": m.family,
                    "params": m.params,
                    "weight": m.weight,
                    "stem": f"members/{stem}",
                    "files": [f"members/{f}" for f in files],
                }
            )
        comparators = []
        if model.comparators:
            (tmp / "comparators").mkdir()
        for name, c in model.comparators.items():
            files = _save_pipeline(c.member.pipeline, tmp / "comparators", name)
            comparators.append(
                {
                    "name": name,
                    "title": c.title,
                    "columns": c.columns,
                    "params": c.member.params,
                    "threshold": c.threshold,
                    "cv_estimate": c.cv_auc,
                    "stem": f"comparators/{name}",
                    "files": [f"comparators/{f}" for f in files],
                }
            )
        return {
            "kind": "classical",
            "label": model.label,
            "positive": model.positive,
            "family": model.family,
            "features": model.features,
            "required_features": model.required_features(),
            "imputable_features": model.imputable,
            "members": members,
            "threshold": model.threshold,
            "threshold_rule": model.threshold_rule,
            "comparators": comparators,
            **{k: v for k, v in model.card.items() if k not in ("fingerprint", "files", "table")},
            "table": {
                "clinical": model.card.get("table", {}).get("clinical"),
                "harmonise": model.card.get("table", {}).get("harmonise"),
                "stable_features": model.card.get("table", {}).get("stable_features"),
            },
            "versions": _versions(),
        }

    model.card = write_model_folder(folder, build, _markdown, table_provenance)
    return Path(folder)


def read_card(folder: str | Path) -> dict:
    """The verified model card of a folder (files and fingerprint checked), without loading pipelines."""
    folder = Path(folder)
    path = folder / CARD
    if not path.is_file():
        raise ModelFolderError(
            f"{folder}: no {CARD}; give a model folder written by `radfeat fit` (or `radfeat train "
            "--train-cohort`)"
        )
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFolderError(
            f"{path}: not valid JSON ({exc}); the card was damaged: refit the model"
        ) from None
    version = card.get("radfeat_model_card_version")
    if version != CARD_VERSION:
        raise ModelFolderError(
            f"{path}: model card version {version!r}, this radfeat reads version {CARD_VERSION}; "
            "refit the model with this radfeat or install the radfeat that wrote it"
        )
    stated = card.get("fingerprint")
    if stated != card_fingerprint(card):
        raise ModelFolderError(
            f"{path}: the card's content does not match its fingerprint {stated}: it was modified "
            "after saving. Refit the model or restore the original folder"
        )
    for rel, digest in card.get("files", {}).items():
        file = folder / rel
        if not file.is_file():
            raise ModelFolderError(f"{file}: missing from the model folder (listed in {CARD})")
        if file_digest(file) != digest:
            raise ModelFolderError(
                f"{file}: modified after saving (SHA-256 differs from {CARD}). Restore the original "
                "folder or refit the model"
            )
    return card


def load_model(folder: str | Path) -> LockedModel:
    """Load a classical model folder written by :func:`save_model`, verifying every file first."""
    folder = Path(folder)
    card = read_card(folder)
    if card.get("kind") != "classical":
        raise ModelFolderError(f"{folder}: a {card.get('kind')!r} model, not a classical one")
    members = []
    for m in card["members"]:
        stem = Path(m["stem"])
        members.append(
            Member(
                m["family"], m["params"], float(m["weight"]), _load_pipeline(folder / stem.parent, stem.name)
            )
        )
    comparators = {}
    for c in card["comparators"]:
        stem = Path(c["stem"])
        pipe = _load_pipeline(folder / stem.parent, stem.name)
        comparators[c["name"]] = Comparator(
            c["name"],
            c["title"],
            list(c["columns"]),
            Member(c["name"], c["params"], 1.0, pipe),
            float(c["threshold"]),
            c.get("cv_estimate", {}),
        )
    return LockedModel(
        label=card["label"],
        positive=card["positive"],
        family=card["family"],
        features=list(card["features"]),
        members=members,
        threshold=float(card["threshold"]),
        threshold_rule=card["threshold_rule"],
        comparators=comparators,
        card=card,
        imputable=list(card.get("imputable_features", [])),
    )


def _settings_diff(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += _settings_diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: model {a!r}, table {b!r}"]


def check_table(card: dict, provenance: dict, columns, *, source: str = "the table") -> None:
    """Refuse a table the model cannot score honestly: other extraction settings, another habitat
    model, or missing feature columns — each named, with the fix."""
    table = card.get("table") or {}
    expected = table.get("settings_hash")
    if expected:
        found = (provenance or {}).get("settings_hash")
        if found is None:
            raise ModelFolderError(
                f"{source} records no extraction settings, the model was trained on a table extracted "
                f"with settings {expected}. Hint: give the cohort manifest instead (radfeat extracts it "
                "with the model's settings), or a table written by `radfeat extract`"
            )
        if found != expected:
            diff = _settings_diff(table.get("settings") or {}, (provenance or {}).get("settings") or {})
            raise ModelFolderError(
                f"{source} was extracted with other settings ({found}) than the model's training table "
                f"({expected}): "
                + "; ".join(diff[:6])
                + (" …" if len(diff) > 6 else "")
                + ". Hint: give the cohort manifest (radfeat extracts it with the model's settings)"
            )
    hab = (table.get("habitat_model") or {}).get("fingerprint")
    if hab:
        found_hab = ((provenance or {}).get("habitat_model") or {}).get("fingerprint")
        if found_hab != hab:
            raise ModelFolderError(
                f"{source}: habitat features from habitat model {found_hab}, the model needs {hab}. "
                "Hint: give the cohort manifest (radfeat applies the model's own habitat model)"
            )
    missing = [f for f in card["features"] if f not in set(columns)]
    if missing:
        raise ModelFolderError(
            f"{source} lacks {len(missing)} feature column(s) the model was trained on: "
            + ", ".join(missing[:8])
            + (" …" if len(missing) > 8 else "")
            + ". Hint: extract with the model's settings (give the cohort manifest to `radfeat predict`)"
        )
