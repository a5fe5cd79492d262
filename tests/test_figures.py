"""Figures are written as PNG/SVG and show what the legend promises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import figures
from models import stats as st


@pytest.fixture()
def two_models():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(40, int), np.zeros(60, int)]
    strong = np.r_[rng.normal(1.5, 1, 40), rng.normal(0, 1, 60)]
    weak = np.r_[rng.normal(0.3, 1, 40), rng.normal(0, 1, 60)]
    return y, strong, weak


def test_roc_figure_legend_and_files(tmp_path, two_models):
    y, strong, weak = two_models
    fig = figures.plot_roc(y, {"radiomics": strong, "SUVmax": weak}, path=tmp_path / "roc.png", n_boot=50)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    res = st.roc_auc(y, strong)
    assert texts[0] == f"radiomics: AUC {res.auc:.2f} ({res.ci_lower:.2f}–{res.ci_upper:.2f})"
    # The drawn curves are the models' ROC curves: their areas are the AUCs, in legend order.
    ax = fig.axes[0]
    curves = [line for line in ax.get_lines() if line.get_label().startswith(("radiomics", "SUVmax"))]
    for line, score in zip(curves, (strong, weak), strict=True):
        x, y_ = line.get_xdata(), line.get_ydata()
        assert (x[0], y_[0], x[-1], y_[-1]) == (0, 0, 1, 1) and np.all(np.diff(x) >= 0)
        assert np.sum(np.diff(x) * (y_[1:] + y_[:-1]) / 2) == pytest.approx(st.roc_auc(y, score).auc)
    # One CI band (the first model's) by default, so bands never merge into one blob; all on request.
    bands = [c for c in ax.collections if len(c.get_paths())]
    assert len(bands) == 1 and "95% bootstrap band of radiomics" in texts
    assert curves[0].get_linestyle() != curves[1].get_linestyle()  # identical curves stay visible
    assert "n = 100 (40 positive)" in ax.get_title()
    every = figures.plot_roc(y, {"radiomics": strong, "SUVmax": weak}, n_boot=20, ci_band="all")
    assert len([c for c in every.axes[0].collections if len(c.get_paths())]) == 2
    import matplotlib.image as mpimg

    pixels = mpimg.imread(tmp_path / "roc.png")
    assert pixels.shape[0] > 300 and pixels[..., :3].std() > 0.05  # a drawn figure, not a blank page
    figures.plot_roc(y, {"radiomics": strong}, path=tmp_path / "roc.svg", ci_band=False)
    assert (tmp_path / "roc.svg").read_text().lstrip().startswith("<?xml")


def test_calibration_and_decision_curve_figures(tmp_path, two_models):
    y, strong, _ = two_models
    p = 1 / (1 + np.exp(-strong))
    cal = figures.plot_calibration(y, {"model": p}, path=tmp_path / "cal.png", n_bins=5)
    curve = st.reliability_curve(y, p, n_bins=5)
    points = cal.axes[0].get_lines()[0]
    np.testing.assert_allclose(np.asarray(points.get_xdata(), float), curve["mean_predicted"].to_numpy(float))
    np.testing.assert_allclose(np.asarray(points.get_ydata(), float), curve["observed"].to_numpy(float))
    fig = figures.plot_decision_curve(y, {"model": p}, path=tmp_path / "dca.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["Treat All", "Treat None", "model"]
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    t = np.asarray(lines["Treat All"].get_xdata(), float)
    nb_all = np.asarray(lines["Treat All"].get_ydata(), float)
    prevalence = y.mean()
    np.testing.assert_allclose(nb_all, prevalence - (1 - prevalence) * t / (1 - t))  # Vickers & Elkin
    assert np.all(np.asarray(lines["Treat None"].get_ydata(), float) == 0)
    assert (tmp_path / "cal.png").stat().st_size > 5000 and (tmp_path / "dca.png").stat().st_size > 5000


@pytest.mark.realdata
def test_kaplan_meier_figure_numbers_at_risk(tmp_path, shared_data):
    aml = pd.read_csv(shared_data / "stats" / "surv_aml.csv")
    fig = figures.plot_kaplan_meier(
        aml["time"], aml["status"], aml["x"], path=tmp_path / "km.png", risk_times=[0, 20, 40]
    )
    risk_axis = fig.axes[1]
    numbers = [t.get_text() for t in risk_axis.texts]
    # At t=0 all 11 maintained and 12 non-maintained patients are at risk.
    assert numbers[0] == "11" and numbers[3] == "12"
    assert (tmp_path / "km.png").stat().st_size > 5000


def test_saliency_overlays_name_the_method_and_carry_a_colour_bar(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from models.fusion.data import FusionData, PatchSpec
    from models.fusion.gradcam import save_overlays

    spec = PatchSpec()
    shape = (2, spec.n_views, spec.n_slices, spec.size, spec.size)
    yy, xx = np.mgrid[0 : spec.size, 0 : spec.size]
    blob = (yy - 16) ** 2 + (xx - 16) ** 2 < 30
    images = np.broadcast_to(blob * 0.8 - 0.5, shape).astype(np.float32)
    data = FusionData(
        case_ids=np.array(["A", "B"]),
        ct=images,
        pet=images + 0.5,
        mask=np.broadcast_to(blob, shape).astype(np.uint8),
        labels={"egfr": np.array([0, 1])},
        classes={"egfr": ["0", "1"]},
        spec=spec,
    )
    cam = np.exp(-((yy - 18) ** 2 + (xx - 14) ** 2) / 20.0)
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)  # keep the figures to inspect them
    before = set(plt.get_fignums())
    save_overlays(data, np.array([0, 1]), {"ct": np.stack([cam, cam]), "pet": np.stack([cam, 0 * cam])},
                  tmp_path, title="HiResCAM of the predicted egfr class")  # fmt: skip
    figures_ = [plt.figure(n) for n in sorted(set(plt.get_fignums()) - before)]
    assert len(figures_) == 2 and len(list(tmp_path.glob("*.png"))) == 2
    second = figures_[1]
    assert second._suptitle.get_text().startswith("HiResCAM of the predicted egfr class")
    labels = [ax.get_ylabel() for ax in second.axes]
    assert any("relative importance" in label for label in labels)  # the colour bar says what it shows
    texts = [t.get_text() for ax in second.axes for t in ax.texts]
    assert any("map is all zero" in t for t in texts)  # not a flat wash
    for n in [f.number for f in figures_]:
        plt.figure(n).clf()
