"""The current-figures table of BENCHMARKS.md comes from the runs the benchmarks record, newest run first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import results
from bench.results import Figure


def test_the_report_keeps_the_newest_run_of_each_figure_and_judges_it_against_its_target(tmp_path: Path) -> None:
    results.record("latency", [Figure("latency.whatif_p95_ms", "What-if p95", 61.0, "ms", target=50.0)],
                   command="first", folder=tmp_path)
    results.record("latency", [Figure("latency.whatif_p95_ms", "What-if p95", 14.1, "ms", target=50.0),
                               Figure("latency.fleet_score_s", "Fleet", 0.5, "s", target=2.0)],
                   command="second", folder=tmp_path)
    results.record("api", [Figure("api.predictions_per_s", "Predictions/s", 90.0, "/s", target=100.0,
                                  better="higher")], command="third", folder=tmp_path)
    rows = {row["key"]: row for row in results.latest(tmp_path)}
    assert rows["latency.whatif_p95_ms"]["value"] == 14.1
    assert rows["latency.whatif_p95_ms"]["met"] is True
    assert rows["latency.whatif_p95_ms"]["command"] == "second"
    assert rows["api.predictions_per_s"]["met"] is False
    text = results.table(list(rows.values()))
    assert "| What-if p95 | **14.1 ms** | ≤ 50 ms | yes |" in text
    assert "**61" not in text and "61 ms" not in text
    assert "| Predictions/s | **90 /s** | ≥ 100 /s | **no** |" in text


def test_writing_replaces_only_what_stands_between_the_markers(tmp_path: Path) -> None:
    results.record("ingest", [Figure("ingest.twelve_files_s", "Twelve files", 1.65, "s", target=5.0)],
                   command="python -m core bench ingest", folder=tmp_path / "runs")
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text(f"# Benchmarks\n\n{results.BEGIN}\nold table\n{results.END}\n\n## History\nkept\n")
    results.report(write=True, folder=tmp_path / "runs", markdown=markdown)
    content = markdown.read_text()
    assert "old table" not in content
    assert "| Twelve files | **1.65 s** | ≤ 5 s | yes |" in content
    assert content.endswith("## History\nkept\n")
    markdown.write_text("# Benchmarks without markers\n")
    with pytest.raises(ValueError, match="marker"):
        results.report(write=True, folder=tmp_path / "runs", markdown=markdown)


def test_a_damaged_record_is_named_by_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "api.jsonl").write_text(json.dumps({"key": "a"}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"api.jsonl line 2"):
        results.latest(tmp_path)


def test_every_benchmark_figure_names_a_unit_and_a_stable_key() -> None:
    from bench import accuracy, latency

    rows = [{"model": "FD001", "test": "test_FD001", "rmse": 10.5, "coverage": 0.89}]
    found = accuracy.figures({"results": rows}) + latency.figures(
        {"whatif_p95_ms": 12.0, "fleet_score_s": 0.6, "engines": 707})
    assert [f.key for f in found] == ["accuracy.FD001.test_FD001.rmse", "accuracy.FD001.test_FD001.coverage",
                                      "latency.whatif_p95_ms", "latency.fleet_score_s"]
    assert [f.met() for f in found] == [True, True, True, True]


def test_a_typed_in_record_is_marked_until_a_run_of_its_benchmark_replaces_it(tmp_path: Path) -> None:
    typed_in = {"bench": "api", "key": "api.batch_100_s", "label": "Batch of 100", "value": 0.1, "unit": "s",
                "target": 0.5, "better": "lower", "met": True, "date": "2026-12-02 18:31-18:50 UTC",
                "commit": "unknown", "machine": "x86_64, 2 cores, Linux", "load_1m": "1.1 → 2.1",
                "command": "python -m core bench api --json", "source": "the printed table of that run"}
    (tmp_path / "api.jsonl").write_text(json.dumps(typed_in) + "\n")
    results.record("ingest", [Figure("ingest.twelve_files_s", "Twelve files", 1.65, "s", target=5.0)],
                   command="python -m core bench ingest", folder=tmp_path)
    text = results.table(results.latest(tmp_path))
    assert "| 2026-12-02 18:31-18:50 UTC † | unknown | x86_64, 2 cores, Linux (load 1.1 → 2.1) |" in text
    assert text.count("†") == 2 and text.endswith(results.TRANSCRIBED)
    assert text.index("Twelve files") < text.index("Batch of 100")
    results.record("api", [Figure("api.batch_100_s", "Batch of 100", 0.12, "s", target=0.5)],
                   command="python -m core bench api", folder=tmp_path)
    text = results.table(results.latest(tmp_path))
    assert "**0.12 s**" in text and "0.1 s" not in text
    assert "†" not in text


def test_a_training_on_a_named_gpu_is_recorded_under_the_kind_of_device() -> None:
    from bench import train_time

    found = train_time.figures({"results": [{"train": "ALL", "device": "cuda (NVIDIA H200)", "wall_s": 24.0},
                                            {"train": "FD001", "device": "cpu", "wall_s": 94.0}]})
    assert [f.key for f in found] == ["train_time.ALL.cuda.wall_s", "train_time.FD001.cpu.wall_s"]
    assert found[0].label.endswith("on cuda (NVIDIA H200)")
