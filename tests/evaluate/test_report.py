"""The report folder of ``cenn evaluate``: every file written, every metric listed, the paper's numbers
beside ours, strict JSON, refusal to overwrite, the CLI and the network as a method."""

import csv
import json
import os
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from cenn.cli import main
from cenn.data.store import DatasetStore
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.document import Document
from cenn.evaluate.metrics import as_line
from cenn.evaluate.run import evaluate
from cenn.predict import Predictor
from cenn.separators import InputInfo, Separator, TargetBandSeparator, build_separator

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = EvaluationConfig(batch_size=8, noise_max_patches=4)
FIGURES = ("fig1_patches.png", "fig3_spectra.png", "fig4_mean_residual_patch.png",
           "fig5_residual_vs_foregrounds.png", "fig6_contaminated_high.png", "fig6_contaminated_noisy.png",
           "transfer.png", "residual_rms.png", "by_dust.png", "noise.png")


class Halved(Separator):
    name = "halved"

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * TargetBandSeparator().separate(inputs, info)


@pytest.fixture(scope="module")
def drawn_report(stores, drawing, tmp_path_factory):
    """The report folder, the metrics and the figures drawn, by file name."""
    out = tmp_path_factory.mktemp("report") / "report"
    with drawing() as drawn:
        metrics = evaluate([(None, stores["sky"]), ("noisy", stores["noisy"])],
                           {"target-band": TargetBandSeparator(), "halved": Halved()}, out, CONFIG,
                           progress=False)
    return out, metrics, drawn


@pytest.fixture(scope="module")
def report(drawn_report):
    return drawn_report[:2]


def _strict_json(path):
    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_every_file_is_written(drawn_report):
    out, _, drawn = drawn_report
    assert set(FIGURES) <= set(drawn)
    for name in FIGURES:  # each file is the PNG of the figure drawn: its size at 110 dpi
        data = (out / "figures" / name).read_bytes()
        size = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert data.startswith(b"\x89PNG"), name
        assert size == tuple(round(v * 110) for v in drawn[name].get_size_inches()), name
    # what they plot: the spectra of metrics.json, and in fig. 1 the target band's output is its input
    results = _strict_json(out / "metrics.json")["results"]
    top = drawn["fig3_spectra.png"].axes[:2]
    for ax, d in zip(top, ("high", "noisy"), strict=True):
        lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
        assert set(lines) == {"CMB label", "target-band", "halved"}
        for m in ("target-band", "halved"):
            np.testing.assert_allclose(lines[m], as_line(results[m][d]["per_bin"]["output_dl_mean"]))
    halved = [as_line(results["halved"][d]["per_bin"]["output_dl_mean"]) for d in ("high", "noisy")]
    full = [as_line(results["target-band"][d]["per_bin"]["output_dl_mean"]) for d in ("high", "noisy")]
    for h, f in zip(halved, full, strict=True):
        np.testing.assert_allclose(h, 0.25 * f, rtol=1e-5)  # half the map: a quarter of the power
    images = [ax.get_images()[0].get_array() for ax in drawn["fig1_patches.png"].axes if ax.get_images()]
    assert len(images) == 8  # observed, label, output, residual for each dataset
    np.testing.assert_array_equal(images[2], images[0])
    np.testing.assert_allclose(images[3], images[1] - images[0])
    assert np.abs(images[0] - images[1]).max() > 1.0  # the foregrounds are there to be left in
    for name in ("summary", "table1", "pixel_metrics", "by_dust", "noise", "spectra_high_halved",
                 "foregrounds_noisy", "per_patch_noisy_target-band"):
        assert (out / "tables" / f"{name}.csv").stat().st_size > 50, name
    assert not list(out.parent.glob(".report.tmp*"))  # the temporary folder was renamed


def test_metrics_json_holds_every_method_dataset_and_metric(report):
    out, metrics = report
    data = _strict_json(out / "metrics.json")
    assert data["schema"] == "cenn-evaluation/1"
    assert set(data["results"]) == {"target-band", "halved"}
    assert list(data["datasets"]) == ["high", "noisy"]
    entry = data["results"]["halved"]["noisy"]
    for key in ("pixel", "mean_residual_patch", "spectra", "per_bin", "by_dust", "noise",
                "contaminated_patch"):
        assert key in entry
    assert set(entry["noise"]) == {"1", "5", "10"}
    # half of (CMB + noise): t = 1/2 where the CMB dominates
    assert entry["spectra"]["transfer"]["0-1000"]["mean"] == pytest.approx(0.5, rel=0.03)
    assert data["paper"]["table1"]["inner"]["rms_uk"] == 7.732
    assert data["results"]["target-band"]["high"]["mean_residual_patch"]["rms_uk"] == pytest.approx(
        metrics["results"]["target-band"]["high"]["mean_residual_patch"]["rms_uk"])


def test_report_lists_every_metric_with_the_papers_numbers(report):
    out, _ = report
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    for text in ("Table 1", "Sect. 4.1", "Sect. 4.2", "Sect. 4.3", "Transfer function", "Correlation",
                 "Pixel metrics", "dust brightness", "noise", "6.85", "30 ± 20", "-0.72 ± 15.5"):
        assert text in md, text
    for name in FIGURES:
        assert f"figures/{name}" in md and f'src="figures/{name}"' in html
    assert html.count("<table>") >= 10
    table1 = list(csv.reader((out / "tables" / "table1.csv").open()))
    assert table1[0][:3] == ["dataset", "paper mean", "paper RMS"] and len(table1) == 3
    per_patch = list(csv.reader((out / "tables" / "per_patch_high_halved.csv").open()))
    high = tomllib.loads((out / "evaluation.toml").read_text())["datasets"]["high"]
    assert len(per_patch) == 1 + DatasetStore.open(high).n_patches


def test_report_reads_figure_first_and_ends_with_the_settings(report):
    """A plain summary, the headline figure (one patch per dataset), the spectra, the summary table;
    the settings last, as tables (no raw JSON)."""
    out, metrics = report
    md = (out / "report.md").read_text()
    order = ["separated the CMB with 2 methods (target-band, halved) on 2 datasets: high (30° < |b| < 90°, "
             "16 patches), noisy (16 patches)", "](figures/fig1_patches.png)", "](figures/fig3_spectra.png)",
             "## Summary", "## Table 1", "## Definitions", "## Settings", "*Datasets (stores relative",
             "*Every method's settings", "| halved | – | – |"]
    positions = [md.index(text) for text in order]
    assert positions == sorted(positions)
    assert md.index("](figures/fig3_spectra.png)") < md.index("\n| ") and md.count("fig1_patches.png)") == 1
    assert "{" not in md
    for d in ("high", "noisy"):
        rms = {m: metrics["results"][m][d]["pixel"]["residual_rms_mean_uk"] for m in metrics["results"]}
        best, other = sorted(rms, key=rms.get)
        assert f"On {d}, {best} leaves the smallest residual: {rms[best]:.3g} µK RMS per patch" in md
        assert f"(against {other} {rms[other]:.3g} µK)" in md
    html = (out / "report.html").read_text()
    assert html.index("<p>cenn ") < html.index('src="figures/fig1_patches.png"') < html.index("<table>")


def test_report_names_no_absolute_path(report, stores):
    out, _ = report
    root = str(out.parent.parent)
    for name in ("report.md", "report.html"):
        assert root not in (out / name).read_text(), name
    row = f"| 30° < \\|b\\| < 90° | {os.path.relpath(stores['sky'], out)} | 16 |"
    assert row in (out / "report.md").read_text()


def test_saved_settings_round_trip(report):
    out, _ = report
    saved = tomllib.loads((out / "evaluation.toml").read_text())
    assert EvaluationConfig.from_dict(saved["evaluation"]) == CONFIG
    assert saved["methods"]["halved"] == {"name": "halved"}


def test_existing_report_is_refused_unless_overwrite(report, stores):
    out, _ = report
    with pytest.raises(FileExistsError, match="--overwrite"):
        evaluate([(None, stores["noisy"])], {"t": TargetBandSeparator()}, out, CONFIG, progress=False)
    with pytest.raises(ValueError, match="two datasets are named"):
        evaluate([(None, stores["noisy"]), (None, stores["clean"])], {"t": TargetBandSeparator()},
                 out.parent / "dup", CONFIG, progress=False)


def test_document_renders_and_escapes():
    doc = Document("T <1>")
    doc.heading("A & B")
    doc.table(["x", "y"], [["1", "<2>"]], "cap")
    doc.figure("f.png", "a figure")
    md, html = doc.markdown(), doc.html()
    assert "| x | y |" in md and "![a figure](f.png)" in md
    assert "&lt;2&gt;" in html and "A &amp; B" in html and '<img src="f.png"' in html
    with pytest.raises(ValueError, match="one cell per header"):
        doc.table(["x", "y"], [["1"]])


# --- the network as a method, and the command line ------------------------------------------------

@pytest.fixture(scope="module")
def weights(tiny_weights, tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


def test_network_separator_equals_the_predictor(stores, weights):
    store = DatasetStore.open(stores["noisy"])
    inputs = store.array("inputs")[:4]
    info = InputInfo.from_store_meta(store.meta)
    out = build_separator("cenn", weights=weights).separate(torch.from_numpy(inputs), info)
    expected = Predictor(weights).predict(inputs, list(info.frequencies_ghz), info.pixel_arcsec)
    assert out.shape == (4, 1, 64, 64)
    np.testing.assert_array_equal(out.numpy(), expected)


def test_cli_evaluates_and_prints_the_summary(stores, weights, tmp_path, capsys):
    out = tmp_path / "rep"
    args = ["evaluate", str(stores["noisy"]), "--methods", "cenn,target-band", "--weights", str(weights),
            "--out", str(out), "--max-patches", "6", "--noise-factors", "none", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "patch RMS" in printed and "cenn" in printed and "target-band" in printed
    data = _strict_json(out / "metrics.json")
    assert data["results"]["cenn"]["high"]["n_patches"] == 6
    assert data["results"]["cenn"]["high"]["noise"] == {}
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_a_full_disk_leaves_no_report_and_says_so(stores, tmp_path, capsys, monkeypatch):
    """The disk fills while the report is written: nothing is left at --out or beside it, the old
    report (if any) is kept, and the message names the cause and the fix."""
    import errno

    import cenn.evaluate.report as report_module

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(report_module, "_per_patch_csv", full)
    args = ["evaluate", str(stores["noisy"]), "--methods", "target-band", "--out", str(tmp_path / "rep"),
            "--max-patches", "4", "--noise-factors", "none", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "the disk is full: free space or write elsewhere" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_uses_the_shipped_weights_by_default(stores, tmp_path):
    out = tmp_path / "r"
    assert main(["evaluate", str(stores["noisy"]), "--out", str(out), "--max-patches", "2",
                 "--noise-factors", "none", "--no-progress"]) == 0
    described = _strict_json(out / "metrics.json")["methods"]["cenn"]
    assert described["weights"].endswith("cenn-unet-cpu.safetensors")
    assert described["architecture"] == "unet"
    report = (out / "report.md").read_text()
    assert "| cenn | weights | reference (shipped with cenn) |" in report
    assert str(Path(described["weights"]).parent) not in report


# --- refusals before any work, and what --overwrite may replace -------------------------------------

def _evaluate_args(store, out, *more) -> list[str]:
    return ["evaluate", str(store), "--methods", "target-band", "--out", str(out), "--max-patches", "2",
            "--noise-factors", "none", "--no-progress", *more]


def test_overwrite_never_replaces_a_folder_holding_an_input_or_not_a_report(stores, tmp_path, capsys):
    """`cenn evaluate x/va.zarr --out x --overwrite` once deleted the input store."""
    import shutil

    store = tmp_path / "x" / "va.zarr"
    shutil.copytree(stores["noisy"], store)
    assert main(_evaluate_args(store, tmp_path / "x", "--overwrite")) == 2
    err = capsys.readouterr().err
    assert err == (f"cenn evaluate: error: {tmp_path / 'x'} holds {store} (a store to evaluate), an input of "
                   "this command: write the report to another folder\n")
    assert DatasetStore.open(store).complete
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert main(_evaluate_args(store, tmp_path / "mine", "--overwrite")) == 2
    assert "mine is not a cenn report folder: cenn only replaces the report folders it wrote" in \
        capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").exists()
    report = tmp_path / "rep"
    assert main(_evaluate_args(store, report)) == 0
    (report / "notes.txt").write_text("mine")
    assert main(_evaluate_args(store, report, "--overwrite")) == 2
    assert "holds notes.txt, which cenn did not write" in capsys.readouterr().err
    (report / "notes.txt").unlink()
    assert main(_evaluate_args(store, report, "--overwrite")) == 0


def test_unwritable_or_missing_folders_and_bad_options_are_refused_first(stores, tmp_path, capsys,
                                                                         monkeypatch):
    assert main(_evaluate_args(stores["noisy"], tmp_path / "missing" / "rep")) == 2
    missing = tmp_path / "missing"
    assert f"error: {missing} does not exist: create it first (mkdir -p {missing})" in capsys.readouterr().err
    args = _evaluate_args(stores["noisy"], tmp_path / "rep")
    args[args.index("--max-patches") + 1] = "0"
    assert main(args) == 2
    assert capsys.readouterr().err == (
        "cenn evaluate: error: --max-patches must be >= 1, got 0: leave it out to evaluate every patch (in "
        "the [evaluation] table of --config, max_patches = 0 means every patch)\n")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main([*_evaluate_args(stores["noisy"], tmp_path / "rep"), "--device", "cuda"]) == 2
    assert capsys.readouterr().err == ("cenn evaluate: error: --device cuda: no CUDA GPU is available on "
                                       "this machine (torch.cuda.is_available() is False): use --device "
                                       "cpu\n")
    monkeypatch.setattr("cenn.outputs.os.access", lambda path, mode: False)
    assert main(_evaluate_args(stores["noisy"], tmp_path / "rep")) == 2
    assert f"error: {tmp_path} is not writable" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_killed_evaluations_temporary_folder_is_cleared(stores, tmp_path):
    import subprocess

    done = subprocess.Popen(["true"])
    done.wait()
    left = tmp_path / f".rep.tmp{done.pid}"
    (left / "tables").mkdir(parents=True)
    assert main(_evaluate_args(stores["noisy"], tmp_path / "rep")) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]
    assert (tmp_path / "rep" / ".cenn-output").exists()


def test_cross_sky_pairs_each_store_with_its_alternative_and_gives_the_ratios(stores, tmp_path):
    """The 'alternative sky' here is the store with foregrounds; the default one holds CMB and noise:
    every ratio is the alternative's figure over the default's, read back from each dataset's results."""
    from cenn.evaluate.summary import headline_figures

    methods = {"target-band": TargetBandSeparator(), "halved": Halved()}
    metrics = evaluate([("high", stores["noisy"])], methods, tmp_path / "r", CONFIG, progress=False,
                       alternative=[("high", stores["sky"])])
    assert list(metrics["datasets"]) == ["high", "alt-high"]
    for m in methods:
        entry = metrics["cross_sky"][m]["high"]
        default = headline_figures(metrics["results"][m]["high"])
        other = headline_figures(metrics["results"][m]["alt-high"])
        assert entry["residual_rms_uk_default"] == default["residual_rms_uk"]
        ratio = other["residual_rms_uk"] / default["residual_rms_uk"]
        assert entry["residual_rms_uk_ratio"] == pytest.approx(ratio)
        assert ratio > 1.05  # the foregrounds are left in the target band map
        assert "residual_rms_uk_vs_nilc" not in entry  # NILC was not evaluated
        assert entry["paired"] is False  # seeds 5 and 9: other positions, CMB and noise
        for name, figures in (("high", default), ("alt-high", other)):  # each patch's share of them
            per_patch = metrics["results"][m][name]["per_patch"]
            assert len(per_patch["residual_rms_uk"]) == metrics["datasets"][name]["n_patches"]
            for key in ("residual_rms_uk", "residual_dl_uk2"):
                assert np.mean(per_patch[key]) == pytest.approx(figures[key], rel=1e-9)
    report = (tmp_path / "r" / "report.md").read_text()
    assert "Cross-model test" in report and "alt-high" in report
