"""``scratchopt bench``: what a new user saw, fixed (issue 16), and the rows it added.

* the "cache-resident" regime comes from a measured cache boundary, not from /sys (a VM
  reported a 480 MiB L3 and every row was labelled cache-resident);
* the "% of floor" plot leaves the copy floor out and caps its y axis;
* times and sizes never print as "1e+03 ms";
* results go to the folder named by ``--out``, else to a git-ignored folder;
* the Adam-with-``global_clipnorm`` row, against torch (clip_grad_norm_ + step) and Keras.
"""

import subprocess
from pathlib import Path

import pytest

from scratchopt.tools.bench import components, machine, peers, report, runner
from scratchopt.tools.bench.timing import fixed

GIB, MIB, KIB = 1 << 30, 1 << 20, 1 << 10
VM = {256 * KIB: 100e9, 512 * KIB: 105e9, 1 * MIB: 110e9, 2 * MIB: 46e9, 4 * MIB: 28e9, 8 * MIB: 28e9,
      16 * MIB: 28e9, 32 * MIB: 18e9, 64 * MIB: 12e9, 128 * MIB: 10e9, 256 * MIB: 9e9,
      512 * MIB: 17e9}  # copy bandwidths measured on this project's 2-core VM; its /sys says L3 = 480 MiB


def test_the_cache_boundary_is_where_copies_slow_to_memory_speed():
    assert machine.cache_boundary(VM) == 32 * MIB  # one fast outlier at 512 MiB does not move it
    assert machine.cache_boundary({1 * MIB: 10e9, 2 * MIB: 10e9, 4 * MIB: 10e9, 8 * MIB: 10e9}) == 0
    step = {1 * MIB: 50e9, 2 * MIB: 10e9, 4 * MIB: 50e9, 8 * MIB: 10e9, 16 * MIB: 10e9, 32 * MIB: 10e9}
    assert machine.cache_boundary(step) == 1 * MIB  # the run from the smallest size up


def test_the_measured_boundary_is_a_power_of_two_below_the_top(monkeypatch):
    monkeypatch.setattr(machine, "copy_bandwidths", lambda sizes: {s: VM.get(s, 9e9) for s in sizes})
    monkeypatch.setattr(machine, "available_memory", lambda: 64 * GIB)
    machine.measured_cache_bytes.cache_clear()
    try:
        size, how = machine.measured_cache_bytes()
        assert size == 32 * MIB and how.startswith("measured") and "reported" in how
    finally:
        machine.measured_cache_bytes.cache_clear()


def test_the_regime_follows_the_measured_cache_not_sys(monkeypatch):
    monkeypatch.setattr(machine, "measured_cache_bytes", lambda: (32 * MIB, "measured (test)"))
    monkeypatch.setattr(machine, "last_level_cache", lambda: 480 * MIB)  # what the VM's /sys says
    rows = [{"device": "cpu", "component": "adam", "size": size, "backend": "numpy", "kind": "ours",
             "median_s": 1.0} for size in (10**5, 10**7)]
    regime = {r["size"]: r["regime"] for r in runner.derive(rows, ["cpu"], None)}
    assert regime == {10**5: "cache-resident", 10**7: "memory"}  # 1.6 MB and 160 MB of arrays
    assert runner._cache_source("cpu", None) == "measured (test)"


@pytest.mark.parametrize("t, text", [(0.9996, "1 s"), (0.99949, "999 ms"), (9.9996e-4, "1 ms"),
                                     (9.99996e-7, "1 µs"), (2.5e-6, "2.5 µs"), (1234.5, "1234 s"),
                                     (3e-10, "0.3 ns"), (None, "-")])
def test_times_never_print_in_exponent_form(t, text):
    assert report.seconds(t) == text


def test_sizes_never_print_in_exponent_form():
    assert [report.nbytes(b) for b in (999, 999_600, 1000, 2.5e9, 3e12)] == [
        "999 B", "1 MB", "1 kB", "2.5 GB", "3000 GB"]


def test_the_pct_plot_leaves_out_the_copy_floor_and_caps_its_axis():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [{"backend": b, "elements": n, "median_s": 1.0, "pct_reachable_floor": p, "regime": "memory"}
            for n in (10**5, 10**7) for b, p in (("copy-floor", 960.0), ("reachable-floor", 100.0),
                                                   ("numpy", 40.0), ("cpu-fused", 90.0), ("torch-eager", 400.0))]
    fig, ax = plt.subplots()
    handles = {}
    report._panel(ax, rows, "pct", handles)
    assert set(handles) == {"numpy", "cpu-fused", "torch-eager"}
    assert ax.get_ylim() == (0, report.PCT_TOP)  # the 400% line is drawn at the edge
    report._panel(ax2 := fig.add_subplot(2, 1, 2), [r for r in rows if r["backend"] != "torch-eager"], "pct", {})
    assert ax2.get_ylim()[1] == pytest.approx(110)
    plt.close(fig)


def test_results_go_to_a_named_or_a_git_ignored_folder():
    out = machine.default_out()
    assert out.parts[0] == str(machine.OUTPUT_DIR)
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", str(out / "results.json")], cwd=root, check=False)
    assert ignored.returncode == 0


def test_adam_with_global_clipnorm_is_a_row_against_every_peer():
    c = components.COMPONENTS["adam_global_clip"]
    assert c.optimizer == ("Adam", {"learning_rate": 0.001, "global_clipnorm": 1.0})
    assert c.bytes_per_element == 32  # the sum of squares, then Adam's pass
    applies = {p for p in peers.PEERS if peers.applies(p, c)}
    assert applies == {"keras-eager", "torch-foreach", "torch-fused"}
    for name in ("clip_norm", "clip_global_norm"):
        assert {p for p in peers.PEERS if peers.applies(p, components.COMPONENTS[name])} == {
            "tf-eager", "torch-foreach"}
    for name in ("batchnorm", "layernorm", "dropout"):
        assert {"keras-eager", "torch-eager"} <= {p for p in peers.PEERS
                                                  if peers.applies(p, components.COMPONENTS[name])}


def test_the_clipped_adam_row_runs_against_torch():
    pytest.importorskip("torch")
    config = runner.Config(sizes=(1000,), components=("adam_global_clip",),
                           backends=("numpy", "cpu-fused", "torch-foreach"), plan=fixed(2), devices=("cpu",))
    results = runner.run(config)
    assert not results["errors"], results["errors"]
    methods = {r["backend"]: r["method"] for r in results["rows"]}
    assert "clip_grad_norm_" in methods["torch-foreach"] and set(methods) == {"numpy", "cpu-fused", "torch-foreach"}


ISSUE_17_ROWS = ("nadam", "adamax", "adagrad", "adadelta", "ftrl", "lion", "lamb", "adafactor", "adafactor_2d",
                 "schedule_free_adamw", "loss_scale_adam")


def test_every_other_keras_optimizer_is_a_row_against_its_peers(tf):
    """Issue 17's bench rows: each optimizer on our paths, Keras's, TF's raw op where TF has
    one, torch's where torch has one; a path that does not apply says why."""
    pytest.importorskip("torch")
    config = runner.Config(sizes=(1000,), components=ISSUE_17_ROWS, plan=fixed(1), devices=("cpu",),
                           backends=("numpy", "cpu-fused", "keras-eager", "tf-raw-op", "torch-foreach"))
    results = runner.run(config)
    assert not results["errors"], results["errors"]
    ran = {(r["component"], r["backend"]) for r in results["rows"]}
    for name in ISSUE_17_ROWS:
        assert {(name, "numpy"), (name, "keras-eager")} <= ran, name
    assert {(n, "tf-raw-op") for n in ("adamax", "adagrad", "adadelta", "ftrl")} <= ran
    assert {(n, "torch-foreach") for n in ("nadam", "adamax", "adagrad", "adadelta", "adafactor",
                                           "adafactor_2d")} <= ran
    assert {(n, "cpu-fused") for n in ("nadam", "adamax", "adagrad", "adadelta", "lion", "lamb", "adafactor",
                                       "adafactor_2d", "schedule_free_adamw", "loss_scale_adam")} <= ran
    notes = " ".join(str(u) for u in results["unavailable"])
    assert "torch.optim has no Lion (pytorch#94904)" in notes and "torch.optim has no FTRL" in notes
