"""External results from a CSV: the paper's headline table, scales, and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis import AnalysisError, analyze, load_csv, write_report

ROOT = Path(__file__).resolve().parents[2]
# The three 7B rows of the headline table in docs/DESIGN_SPACE.md (percent).
HEADLINE = """model,VQAv2,GQA,VizWiz,TextVQA,RefCOCO,RefCOCO+,RefCOCOg,OCID,VSR,POPE,TallyQA,AI2D
LLaVA v1.5 7B (reproduced),76.80,62.28,51.26,46.44,60.54,54.34,56.31,41.75,52.95,86.57,60.87,54.43
single-stage 7B,77.09,62.57,54.33,44.45,64.08,58.19,58.03,44.58,51.47,86.57,61.63,54.85
Prism DINOSigLIP 7B,80.97,65.27,52.82,55.64,77.78,73.08,71.04,54.12,59.57,88.12,66.70,55.65
"""


@pytest.fixture
def headline(tmp_path: Path) -> Path:
    path = tmp_path / "headline.csv"
    path.write_text(HEADLINE)
    return path


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_headline_table_through_the_cli(headline, tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "analysis", "--results-csv", str(headline), "--by", "model",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv")
    ranked = summary.sort_values("rank")["model"].tolist()
    assert ranked[0] == "Prism DINOSigLIP 7B" and ranked[-1] == "LLaVA v1.5 7B (reproduced)"
    assert summary["zscore_mean"].is_monotonic_decreasing and "zscore_mean" in summary
    assert summary["zscore_mean"].sum() == pytest.approx(0.0, abs=1e-9)  # z-scores centre at 0
    for name in ("radar_model.png", "radar_model.pdf", "summary.md", "summary.tex", "report.html"):
        assert (out / name).stat().st_size > 0
    assert "**80.97**" in (out / "summary.md").read_text()  # best VQAv2 marked
    assert r"\textbf{80.97}" in (out / "summary.tex").read_text()
    assert "Prism DINOSigLIP 7B" in proc.stdout.splitlines()[1]  # rank 1 printed first


def test_fractions_and_percents_give_the_same_zscores(headline, tmp_path):
    percent = analyze(load_csv(headline, "model"))
    frame = pd.read_csv(headline)
    frame[frame.columns[1:]] = frame[frame.columns[1:]] / 100
    fractions = tmp_path / "fractions.csv"
    frame.to_csv(fractions, index=False)
    scaled = analyze(load_csv(fractions, ["model"]))
    assert scaled.summary["VQAv2"].tolist() == pytest.approx(percent.summary["VQAv2"].tolist())
    assert scaled.summary["zscore_mean"].tolist() == pytest.approx(
        percent.summary["zscore_mean"].tolist())


def test_seeds_and_context_columns(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("encoder,llm,seed,vqa,ref\n"
                    "clip,llama2,0,0.50,0.30\nclip,llama2,1,0.52,0.32\n"
                    "siglip,llama2,0,0.55,0.31\nsiglip,llama2,1,0.57,0.35\n"
                    "clip,vicuna,0,0.40,0.20\nsiglip,vicuna,0,0.45,0.22\n")
    res = load_csv(path, "encoder")
    assert res.context == ["llm"] and res.seed == "seed" and res.benchmarks == ["vqa", "ref"]
    a = analyze(res, test="t")
    assert len(a.summary) == 4 and a.summary["n_runs"].max() == 2
    vqa = a.comparisons[(a.comparisons.metric == "vqa")].iloc[0]
    assert vqa.n_pairs == 3 and vqa.mean_delta == pytest.approx(5.0)  # pairs match llm and seed


@pytest.mark.parametrize("by, message", [
    ("family", "has no column 'family'; its columns are model, VQAv2"),
    ("", "--by names no column"),
])
def test_by_naming_an_absent_column(headline, by, message):
    with pytest.raises(AnalysisError, match=message):
        load_csv(headline, by)


def test_csv_without_benchmarks_or_with_text_scores(tmp_path):
    only_labels = tmp_path / "labels.csv"
    only_labels.write_text("model,notes\na,x\nb,y\n")
    with pytest.raises(AnalysisError, match="no numeric benchmark column"):
        load_csv(only_labels, "model")
    bad = tmp_path / "bad.csv"
    bad.write_text("model,vqa,ref\na,0.5,0.1\nb,0.6,oops\n")
    with pytest.raises(AnalysisError, match="'ref'.*non-numbers on lines \\[3\\]"):
        load_csv(bad, "model", benchmarks=["vqa", "ref"])
    with pytest.raises(AnalysisError, match="does not exist"):
        load_csv(tmp_path / "absent.csv", "model")


def test_python_api_writes_png_only_when_asked(headline, tmp_path):
    files = write_report(analyze(load_csv(headline, "model")), tmp_path / "r", formats=("png",))
    names = {f.name for f in files}
    assert "radar_model.png" in names and not any(n.endswith(".pdf") for n in names)
    assert names >= {"summary.csv", "summary.md", "summary.tex", "report.html",
                     "comparisons.csv", "main_effects.csv", "anova.csv", "deltas_model.png"}
