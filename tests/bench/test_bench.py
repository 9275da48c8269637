"""`kefu bench` on the tiny bundle: the in-process parts, the results file, ratios and table.

Timings are never asserted (a benchmark reports, it does not pass or fail); shapes, counts,
the ratio arithmetic and the FLOPs formula are.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kefu.bench.cells import Row
from kefu.bench.flops import flops_per_message
from kefu.bench.plan import QUICK
from kefu.bench.ratios import compute_ratios
from kefu.bench.reference import Architecture
from kefu.bench.report import render_readme
from kefu.bench.rows import table_rows
from kefu.bench.run import run_bench
from kefu.bench.table import markdown_table
from kefu.cli.main import app

IN_PROCESS = ("ort_raw", "flops", "accuracy", "torch", "training")


@pytest.fixture(scope="module")
def quick_run(tiny_bundle, tmp_path_factory):
    results_dir = tmp_path_factory.mktemp("bench")
    results, path = run_bench(
        tiny_bundle,
        quick=True,
        results_dir=results_dir,
        skip=("server", "batch_scoring"),
        threads=1,
    )
    return results, path


def test_quick_run_writes_one_results_file_with_every_part(quick_run):
    results, path = quick_run
    assert path.name.endswith("-quick-partial.json")  # never the day's full run's file
    assert results["skipped"] == ["batch_scoring", "server"]
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert set(on_disk["parts"]) == set(IN_PROCESS)
    assert all("error" not in on_disk["parts"][part] for part in IN_PROCESS), on_disk["parts"]
    assert on_disk["bundle"]["model_version"] == "tiny-0"
    assert on_disk["machine"]["cores"] >= 1 and on_disk["machine"]["cpu"]
    assert on_disk["workload"]["rows"] > 0 and on_disk["workload"]["mean_tokens"] > 2


def test_raw_ort_reports_every_variant_and_batch_size(quick_run):
    ort = quick_run[0]["parts"]["ort_raw"]
    assert set(ort["variants"]) == {"fp32", "int8"}
    for points in ort["variants"].values():
        assert set(points) == {"batch_1", "batch_8", "batch_32"}
        for point in points.values():
            assert point["messages"] == QUICK.ort_messages or point["messages"] > 0
            assert point["total_ms_per_msg"] == pytest.approx(
                point["tokenise_ms_per_msg"] + point["model_ms_per_msg"]
            )
    assert ort["variants"]["fp32"]["batch_1"]["padding_share"] == 0.0


def test_torch_reference_says_what_weights_it_timed(quick_run):
    torch_part = quick_run[0]["parts"]["torch"]
    assert set(torch_part) >= {"batch_1", "batch_32", "weights"}
    assert "random" in torch_part["weights"]
    assert set(torch_part["batch_32"]["ort_same_batches"]) == {"fp32", "int8"}


def test_accuracy_compares_int8_with_fp32_per_head(quick_run):
    accuracy = quick_run[0]["parts"]["accuracy"]
    for head in ("intent", "urgency", "emotion"):
        fp32 = accuracy["variants"]["fp32"][head]["macro_f1"]
        int8 = accuracy["variants"]["int8"][head]["macro_f1"]
        assert accuracy["int8_minus_fp32_points"][head] == pytest.approx(100 * (int8 - fp32))
        assert 0.0 <= accuracy["same_top1_share"][head] <= 1.0


def test_training_speed_counts_full_batches_of_the_default_config(quick_run):
    training = quick_run[0]["parts"]["training"]
    assert training["batch_size"] == 32  # training/configs/default.yaml
    assert training["steps"] == QUICK.train_steps
    assert training["examples"] == training["steps"] * training["batch_size"]


def test_ratios_are_quotients_of_the_reported_numbers(quick_run):
    results = quick_run[0]
    ort, torch_part = results["parts"]["ort_raw"]["variants"], results["parts"]["torch"]
    ours = results["ratios"]["ours_over_pytorch"]
    # ORT timed in turns with the pipeline on the same batches
    assert ours["int8_batch_32"] == pytest.approx(
        torch_part["batch_32"]["ort_same_batches"]["int8"]
        / torch_part["batch_32"]["total_ms_per_msg"]
    )
    int8 = results["ratios"]["int8_over_fp32"]
    assert int8["model_ms_batch_8"] == pytest.approx(
        ort["int8"]["batch_8"]["model_ms_per_msg"] / ort["fp32"]["batch_8"]["model_ms_per_msg"]
    )
    # parts that did not run leave their ratios empty rather than failing
    assert results["ratios"]["server_p50_over_raw_b1"] == {"fp32": None, "int8": None}


def test_table_and_readme_show_every_part_and_the_machine(quick_run):
    results, path = quick_run
    parts = {row.part for section in table_rows(results) for row in section}
    assert parts == {"raw ORT", "PyTorch pipeline", "training", "accuracy", "compute", "ratio"}
    markdown = markdown_table(results)
    assert markdown.startswith("| part | measure | fp32 | INT8 | INT8 / fp32 |")
    readme = render_readme(results, path, path.parent / "README.md")
    assert results["machine"]["cpu"] in readme and path.name in readme


def test_flops_per_message_matches_the_hand_count():
    arch = Architecture(layers=2, hidden=4, intermediate=8, heads_out=3, base_model="x")
    # per layer, L=10: projections 8*10*16 + attention 4*100*4 + feed-forward 4*10*4*8
    per_layer = 1280 + 1600 + 1280
    assert flops_per_message(10, arch) == 2 * per_layer + 2 * 4 * 3


def test_ratios_of_an_empty_run_are_all_missing():
    ratios = compute_ratios({}, "int8")
    assert ratios["server_c32_over_raw_best"] == {"fp32": None, "int8": None}
    assert set(ratios["ours_over_pytorch"].values()) == {None}
    assert ratios["batch_scoring_over_raw_best"] == {"variant": "int8"}


def test_cli_refuses_an_unknown_part():
    result = CliRunner().invoke(app, ["bench", "--skip", "gpu"])
    assert result.exit_code == 2
    assert "unknown part(s) ['gpu'] in --skip" in result.output


def test_cli_names_a_missing_bundle(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--bundle", str(tmp_path / "none"), "--quick"])
    assert result.exit_code == 2  # BundleError: the command was pointed at no bundle
    assert result.output.startswith("kefu bench: ")
    assert str(tmp_path / "none") in result.output


def _ort_point(size: int, ms: float, p50: float) -> dict:
    return {
        "batch_size": size,
        "tokenise_ms_per_msg": 0.5,
        "model_ms_per_msg": ms - 0.5,
        "total_ms_per_msg": ms,
        "msgs_per_s": 1000 / ms,
        "batch_latency": {"p50_ms": p50},
    }


def _server_level(p50: float, rps: float) -> dict:
    latency = {"p50_ms": p50, "p95_ms": 2 * p50, "p99_ms": 3 * p50}
    return {"requests": 100, "errors": 0, "throughput_rps": rps, "latency": latency}


def test_server_and_batch_ratios_from_known_numbers():
    results = {
        "bundle": {"default_variant": "int8"},
        "parts": {
            "ort_raw": {
                "variants": {
                    "fp32": {
                        "batch_1": _ort_point(1, 4.0, 4.0),
                        "batch_32": _ort_point(32, 2.0, 64),
                    },
                    "int8": {
                        "batch_1": _ort_point(1, 2.0, 2.0),
                        "batch_32": _ort_point(32, 1.0, 32),
                    },
                }
            },
            "server": {
                "variants": {
                    "fp32": {"c1": _server_level(8.0, 100), "c32": _server_level(300, 250)},
                    "int8": {
                        "raw_ort_just_before": {"b1_p50_ms": 1.5, "b32_msgs_per_s": 2000},
                        "c1": _server_level(3.0, 250),
                        "c32": _server_level(100, 500),
                    },
                }
            },
            "batch_scoring": {
                "rows": 1000,
                "engines": {"local": {"rows": 1000, "rows_per_s": 800, "peak_pss_mb": 900}},
            },
        },
    }
    results["ratios"] = ratios = compute_ratios(results, "int8")
    # fp32 falls back to the raw ORT part; INT8 uses the raw reference taken just before
    assert ratios["server_p50_over_raw_b1"] == {"fp32": 2.0, "int8": 2.0}
    assert ratios["server_c32_over_raw_best"] == {"fp32": 0.5, "int8": 0.25}
    assert ratios["batch_scoring_over_raw_best"] == {"local": 0.8, "variant": "int8"}
    assert ratios["int8_over_fp32"]["server_p50_c1"] == pytest.approx(3.0 / 8.0)
    rows = {row.measure: row for section in table_rows(results) for row in section}
    assert rows["c=1: p50 / p95 / p99 ms"].cells()[2:] == [
        "8.00 / 16.00 / 24.00",
        "3.00 / 6.00 / 9.00",
        "0.38x",
    ]
    assert rows["batch scoring rows/s / raw ORT best batch"].cells()[2:] == [
        "-",
        "local 0.80x",
        "-",
    ]
    assert rows["errors / requests"].cells()[2:4] == ["0 / 200", "0 / 200"]


def test_batched_and_worker_ratios_use_the_best_raw_batch_just_before():
    results = {
        "parts": {
            "server": {
                "variants": {
                    "int8": {
                        "raw_ort_just_before": {
                            "b1_p50_ms": 2.0,
                            "b8_msgs_per_s": 1000,
                            "b32_msgs_per_s": 800,
                        },
                        "c1": _server_level(2.5, 400),
                        "c32": _server_level(50, 500),
                        "c32_batch8": {**_server_level(300, 110), "msgs_per_s": 880},
                        "healthz_c32": _server_level(5, 6000),
                        "workers2_c32": _server_level(40, 600),
                    }
                }
            }
        }
    }
    results["ratios"] = ratios = compute_ratios(results, "int8")
    assert ratios["server_c32_over_raw_best"]["int8"] == pytest.approx(0.5)
    assert ratios["server_c32_batch8_over_raw_best"] == {"fp32": None, "int8": pytest.approx(0.88)}
    assert ratios["server_c32_workers2_over_workers1"]["int8"] == pytest.approx(1.2)
    rows = {row.measure: row for section in table_rows(results) for row in section}
    assert rows["c=32, 8-message requests: msgs/s"].cells()[3] == "880"
    assert rows["GET /healthz c=32 (framework floor): requests/s"].cells()[3] == "6,000"
    assert rows["--workers 2, c=32: msgs/s"].cells()[3] == "600"
    ratio = "server msgs/s (c=32, 8-message requests) / raw ORT best batch"
    assert rows[ratio].cells()[3] == "0.88x"
    assert rows["errors / requests"].cells()[3] == "0 / 500"


def test_headline_server_ratios_are_the_median_of_the_alternating_rounds():
    def point(b1: float, c1: float) -> dict:
        return {
            "raw_b1_p50_ms": b1,
            "server_c1_p50_ms": c1,
            "raw_best_msgs_per_s": 1000.0,
            "server_c32_batch8_msgs_per_s": 900.0,
            "requests": 10,
            "errors": 0,
        }

    interleaved = {
        "rounds": [point(1.0, 1.2), point(2.0, 2.6), point(1.0, 3.0)],
        "requests": 30,
        "errors": 0,
        "server_p50_over_raw_b1": 1.3,
        "server_c32_batch8_over_raw_best": 0.9,
    }
    results = {
        "parts": {
            "server": {
                "variants": {
                    "int8": {
                        "raw_ort_just_before": {"b1_p50_ms": 1.0, "b8_msgs_per_s": 1000},
                        "c1": _server_level(2.5, 400),
                        "c32_batch8": {**_server_level(300, 100), "msgs_per_s": 800},
                        "interleaved": interleaved,
                    }
                }
            }
        }
    }
    results["ratios"] = ratios = compute_ratios(results, "int8")
    assert ratios["server_p50_over_raw_b1"]["int8"] == 1.3
    assert ratios["server_c32_batch8_over_raw_best"]["int8"] == 0.9
    # the long levels against the raw run before them stay in the results, beside the median
    assert ratios["single_shot"]["server_p50_over_raw_b1"]["int8"] == pytest.approx(2.5)
    assert ratios["single_shot"]["server_c32_batch8_over_raw_best"]["int8"] == pytest.approx(0.8)
    rows = {row.measure: row for section in table_rows(results) for row in section}
    assert rows["server p50 (c=1) / raw ORT batch-1 p50"].cells()[3] == "1.30x"
    single = "  the same from the c=1 level and the raw ORT just before it"
    assert rows[single].cells()[3] == "2.50x"
    assert rows["errors / requests"].cells()[3] == "0 / 230"


def test_the_server_profile_names_a_missing_profiler_instead_of_a_traceback(
    monkeypatch, tmp_path, capsys
):
    import shutil
    import sys

    from kefu.bench import server_profile

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    assert server_profile.main(["--bundle", str(tmp_path)]) == 2
    assert "py-spy is not installed: `pip install py-spy==0.4.3`" in capsys.readouterr().err


def test_only_the_load_before_the_run_says_other_work_shared_the_cpu():
    from kefu.bench.report import busy_note

    quiet = {"cores": 2, "load_avg_1m_at_start": 0.4, "load_avg_1m_at_end": 2.6}
    busy = {"cores": 2, "load_avg_1m_at_start": 3.1, "load_avg_1m_at_end": 2.6}
    assert "other work" not in busy_note(quiet) and "bench's own load" in busy_note(quiet)
    assert "other work shared the CPU" in busy_note(busy)


@pytest.mark.parametrize("readme_flag", [[], ["--readme"]])
def test_a_run_that_skips_parts_keeps_the_full_runs_files(
    tiny_bundle, tmp_path, monkeypatch, readme_flag
):
    readme = tmp_path / "README.md"
    monkeypatch.setattr("kefu.bench.run.README", readme)
    results_dir = tmp_path / "results"
    skip = ",".join(part for part in ("ort_raw", "accuracy", "torch", "training", "server",
                                      "batch_scoring"))  # fmt: skip
    result = CliRunner().invoke(
        app,
        ["bench", "--bundle", str(tiny_bundle), "--skip", skip, "--results-dir", str(results_dir)]
        + readme_flag,
    )
    assert result.exit_code == 0, result.output
    [written] = results_dir.iterdir()
    assert written.name.endswith("-partial.json") and "quick" not in written.name
    assert readme.exists() == bool(readme_flag)  # rewritten only when asked for


def test_an_unwritable_results_dir_or_an_empty_plan_is_refused_before_measuring(
    tiny_bundle, tmp_path
):
    taken = tmp_path / "a-file"
    taken.write_text("x")
    result = CliRunner().invoke(
        app, ["bench", "--bundle", str(tiny_bundle), "--quick", "--results-dir", str(taken)]
    )
    assert result.exit_code == 2 and f"--results-dir {taken} cannot be created" in result.output
    everything = "ort_raw,flops,accuracy,torch,training,server,batch_scoring"
    result = CliRunner().invoke(app, ["bench", "--bundle", str(tiny_bundle), "--skip", everything])
    assert result.exit_code == 2 and "--skip names every part" in result.output


def test_a_run_with_a_failed_part_is_partial_and_leaves_the_summary(
    tiny_bundle, tmp_path, monkeypatch
):
    import kefu.bench.run as bench_run

    def broken(*args, **kwargs):
        raise RuntimeError("no FLOPs today")

    monkeypatch.setattr(bench_run, "_flops", broken)
    readme = tmp_path / "README.md"
    readme.write_text("the last complete run", encoding="utf-8")
    skip = ("ort_raw", "accuracy", "torch", "training", "server", "batch_scoring")
    results, path = run_bench(
        tiny_bundle, quick=True, results_dir=tmp_path, readme=readme, skip=skip, threads=1
    )
    assert results["failed"] == ["flops"] and path.name.endswith("-quick-partial.json")
    assert results["parts"]["flops"] == {"error": "RuntimeError: no FLOPs today"}
    assert readme.read_text(encoding="utf-8") == "the last complete run"


def test_a_long_error_in_the_table_is_cut_and_marked():
    """A long error (a traceback's last line, a server log) keeps the table readable and says
    that it was cut."""
    error = "RuntimeError: " + "x" * 200
    (failed, *_) = table_rows({"parts": {"flops": {"error": error}}})
    assert failed == [Row("flops", f"failed: {error[:99]}…")]
    (server, *_) = table_rows({"parts": {"server": {"variants": {"int8": {"error": error}}}}})
    assert server[0] == Row("HTTP server", f"int8 failed: {error[:99]}…")
    short = table_rows({"parts": {"flops": {"error": "RuntimeError: no FLOPs today"}}})
    assert short[0] == [Row("flops", "failed: RuntimeError: no FLOPs today")]
