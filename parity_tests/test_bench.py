"""``scratchopt bench``: the suite's core on a tiny case, its results schema and its arithmetic.

No timing is asserted (machines are noisy): only that every row is complete and that its
derived columns (bytes, GB/s, % of the floors, ratio to the best peer) follow from its
measured time and the bytes model.
"""

import json
import math

import numpy as np
import pytest

from scratchopt.tools import cli
from scratchopt.tools.bench import components, machine, report, runner
from scratchopt.tools.bench.timing import fixed, summary

OURS_AND_FLOORS = ("copy-floor", "reachable-floor", "numpy", "cpu-fused")
ROW_FIELDS = {
    "device", "component", "backend", "kind", "size", "elements", "dtype", "median_s", "q1_s", "q3_s",
    "min_s", "max_s", "repeats", "method", "note", "bytes", "gbps", "working_set_bytes", "regime",
    "copy_floor_s", "reachable_floor_s", "pct_copy_floor", "pct_reachable_floor", "best_peer",
    "ratio_to_best_peer",
}
TOP_FIELDS = {"schema", "created", "machine", "device_name", "versions", "settings", "devices",
              "gpu_missing_reason", "backends", "components", "rows", "skipped", "unavailable", "errors"}


@pytest.fixture(scope="module")
def adam():
    config = runner.Config(sizes=(1000,), components=("adam",), backends=OURS_AND_FLOORS, plan=fixed(2))
    return runner.run(config)


def test_results_have_the_schema_and_serialise(adam):
    assert set(adam) == TOP_FIELDS
    assert adam["schema"] == runner.SCHEMA and adam["devices"][0] == "cpu"
    assert adam["errors"] == []
    json.loads(json.dumps(adam, allow_nan=False))  # what results.json holds
    m = adam["machine"]
    assert m["cpu_model"] and m["cores"] >= 1 and m["usable_cores"] >= 1
    assert adam["versions"]["numpy"] and adam["versions"]["scratchopt"]
    assert adam["settings"]["plan"]["min_repeats"] == 2
    model = adam["components"]["adam"]
    assert model["bytes_per_element"] == 28  # read g, w, m, v; write w, m, v
    assert model["passes"] == [{"reads": [4] * 4, "writes": [4] * 3, "in_place": 3, "reduce": False}]
    for device, backends in adam["backends"].items():
        for name, entry in backends.items():
            assert entry["available"] or entry["reason"], (device, name)
    if adam["gpu_missing_reason"] is None:
        assert "gpu" in adam["devices"]


def test_rows_are_complete_and_consistent(adam):
    rows = {r["backend"]: r for r in adam["rows"]}
    assert {"copy-floor", "reachable-floor", "numpy"} <= set(rows)
    for backend, row in rows.items():
        assert set(row) == ROW_FIELDS, backend
        assert row["kind"] == runner.kind_of(backend)
        assert row["size"] == row["elements"] == 1000 and row["dtype"] == "float32"
        assert row["repeats"] == 2
        assert row["min_s"] <= row["q1_s"] <= row["median_s"] <= row["q3_s"] <= row["max_s"]
        assert row["bytes"] == 28 * 1000
        assert math.isclose(row["gbps"], row["bytes"] / row["median_s"] / 1e9)
        assert row["copy_floor_s"] == rows["copy-floor"]["median_s"]
        assert row["reachable_floor_s"] == rows["reachable-floor"]["median_s"]
        assert math.isclose(row["pct_reachable_floor"], 100 * row["reachable_floor_s"] / row["median_s"])
        assert math.isclose(row["pct_copy_floor"], 100 * row["copy_floor_s"] / row["median_s"])
        assert row["regime"] == "cache-resident"  # 16 kB of arrays
        assert row["best_peer"] is None and row["ratio_to_best_peer"] is None  # no peer asked for
        assert row["method"]
    assert math.isclose(rows["reachable-floor"]["pct_reachable_floor"], 100)
    fused = adam["backends"]["cpu"]["cpu-fused"]
    assert ("cpu-fused" in rows) == fused["available"] or any(
        u["backend"] == "cpu-fused" for u in adam["unavailable"])


def test_ratio_to_best_peer_and_regime():
    rows = [{"device": "cpu", "component": "sgd", "size": 10**8, "backend": b, "kind": runner.kind_of(b),
             "median_s": t} for b, t in (("reachable-floor", 1.0), ("copy-floor", 2.0), ("numpy", 4.0),
                                         ("keras-eager", 8.0), ("tf-raw-op", 2.0))]
    derived = {r["backend"]: r for r in runner.derive(rows, ["cpu"], None)}
    assert [r["backend"] for r in runner.derive(rows, ["cpu"], None)] == [
        "copy-floor", "reachable-floor", "numpy", "keras-eager", "tf-raw-op"]
    numpy = derived["numpy"]
    assert numpy["best_peer"] == "tf-raw-op" and numpy["ratio_to_best_peer"] == 2.0
    assert numpy["pct_reachable_floor"] == 25.0 and numpy["pct_copy_floor"] == 50.0
    assert numpy["bytes"] == 12 * 10**8 and numpy["gbps"] == 0.3
    assert numpy["regime"] == "memory"  # 800 MB of arrays


def test_bytes_model():
    c = components.COMPONENTS
    expected = {"sgd": 12, "sgd_momentum": 20, "adam": 28, "adamw": 28, "adam_global_clip": 32,
                "adam_1000": 28, "adam_1000_global_clip": 32, "rmsprop": 20,
                "rmsprop_centered": 28, "batchnorm": 32, "layernorm": 20, "dropout": 18, "clip_norm": 12,
                "clip_global_norm": 12, "nadam": 28, "adamax": 28, "adagrad": 20, "adadelta": 28, "ftrl": 28,
                "lion": 20, "lamb": 40, "adafactor": 32, "adafactor_2d": 32, "schedule_free_adamw": 28,
                "loss_scale_adam": 32}
    assert {name: comp.bytes_per_element for name, comp in c.items()} == expected
    assert c["batchnorm"].elements(1050) == 1000  # whole rows of 100 features
    assert c["clip_global_norm"].elements(1002) == 1000 and c["adam_1000"].elements(10) == 1000
    # the factored Adafactor row: one matrix, as square as powers of ten allow
    assert [components.matrix_shape(n) for n in (1000, 10**4, 10**7, 10**8, 5)] == [
        (10, 100), (100, 100), (1000, 10000), (10000, 10000), (1, 5)]
    assert c["adafactor_2d"].elements(1050) == 1050 and c["adafactor_2d"].elements(10**5 + 7) == 10**5
    (w,) = components.optimizer_tensors(c["adafactor_2d"], np.arange(1000.0))
    assert w.shape == (10, 100) and w[1, 0] == 100
    assert [a.shape for a in components.optimizer_tensors(c["adafactor"], np.zeros(1000))] == [(1000,)]


def test_sizes_that_do_not_fit_are_skipped_with_the_reason(monkeypatch):
    monkeypatch.setattr(machine, "available_memory", lambda: 1 << 20)
    config = runner.Config(sizes=(1000,), components=("sgd",), backends=("numpy",), plan=fixed(1))
    results = runner.run(config)
    assert results["rows"] == []
    (skip,) = results["skipped"]
    assert skip["component"] == "sgd" and "MemAvailable" in skip["reason"] and "GiB" in skip["reason"]


def test_summary_quartiles():
    s = summary([4.0, 1.0, 3.0, 2.0])
    assert (s["min_s"], s["q1_s"], s["median_s"], s["q3_s"], s["max_s"], s["repeats"]) == (1, 1.75, 2.5, 3.25, 4, 4)


def test_cli_writes_json_table_and_plots(tmp_path, capsys):
    out = tmp_path / "results"
    code = cli.main(["bench", "--sizes", "1e3", "--components", "clip_norm", "--backends",
                     "numpy,copy-floor,reachable-floor", "--repeats", "2", "--out", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["backend"] for r in results["rows"]] == ["copy-floor", "reachable-floor", "numpy"]
    assert results["rows"][0]["bytes"] == 12 * 1000
    assert "clip_by_norm" in (out / "table.txt").read_text()
    for png in ("time_vs_size_cpu.png", "pct_floor_cpu.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 rows" in capsys.readouterr().out


def test_cli_refuses_unknown_names(capsys):
    assert cli.main(["bench", "--components", "adamw_typo"]) == 2
    assert "unknown adamw_typo" in capsys.readouterr().err
    assert report.size_label(10**7) == "1e7" and report.seconds(2.5e-6) == "2.5 µs"


def test_the_core_needs_neither_tensorflow_nor_rich():
    import subprocess
    import sys

    code = ("import sys; from scratchopt.tools.bench import runner; from scratchopt.tools.bench.timing import fixed; "
            "r = runner.run(runner.Config(sizes=(100,), components=('sgd',), backends=('numpy',), plan=fixed(1))); "
            "assert r['rows'] and r['errors'] == [], r; "
            "assert not {'tensorflow', 'keras', 'torch', 'rich', 'matplotlib'} & set(sys.modules), sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_missing_backend_is_a_line_with_the_reason_not_a_failure(monkeypatch):
    from scratchopt.tools.bench import ours

    monkeypatch.setattr(ours, "layers_status", lambda: (False, "scratchopt.layers does not import: (test)"))
    config = runner.Config(sizes=(1000,), components=("dropout",), backends=("numpy", "torch-eager"),
                           plan=fixed(1))
    results = runner.run(config)
    torch_ok = results["backends"]["cpu"]["torch-eager"]["available"]
    assert [r["backend"] for r in results["rows"]] == (["torch-eager"] if torch_ok else [])
    assert results["errors"] == []
    reasons = {u["backend"]: u["reason"] for u in results["unavailable"]}
    assert reasons["numpy"] == "scratchopt.layers does not import: (test)"
    if not torch_ok:
        assert reasons["torch-eager"] == results["backends"]["cpu"]["torch-eager"]["reason"]
