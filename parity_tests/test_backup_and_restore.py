"""BackupAndRestore: a run killed (SIGKILL) at any point and restarted ends bit-identical.

``backup_train.py`` is a small float64 training run (Adam, shuffle=True, Dropout with a
seed, BatchNormalization, ReduceLROnPlateau, EarlyStopping with restore_best_weights, which
stops it at epoch 11 of 20). The uninterrupted run's result (weights, optimizer state, the
callbacks' counters and bests) is the reference; each chain below kills a run at some point,
restarts it (same arguments) until it exits with 0, and compares the result bit for bit,
with the last epoch's logs (loss, metric, validation values: a half epoch resumed carries
its running sums and metric state over):

* at the end of epoch 3, before that epoch's backup;
* in the middle of writing a mid-epoch backup (``save_freq=4``): the temporary file fully
  written but not yet renamed (``os.replace``);
* inside ``os.fsync`` of a backup (epoch backups, with the previous one kept);
* at an epoch's end after a backup made at its last batch (``save_freq=6``, the batches of an
  epoch): the resumed run has no batch left in that epoch, only its end;
* at random moments: twice, each a random delay after the run says it has started
  training (``save_freq=5``, so the kills land between and during mid-epoch backups).

The chains run as parallel subprocesses, on the array code (``SCRATCHOPT_BACKEND=numpy``: a
run takes about 1 s, where compiling numba's kernels takes 13 s on a 2-core VM). One chain,
inside ``os.fsync``, runs on the compiled path, killed and resumed, and must still end with the
array code's bits: the two paths agree, so a run may resume on either.
"""

import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from scratchopt import callbacks as cb
from scratchopt.layers import Dropout
from scratchopt.nn import saving

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "backup_train.py"


def run(workdir, save_freq=None, env=None, compiled=False):
    args = [sys.executable, str(SCRIPT), str(workdir)] + ([str(save_freq)] if save_freq else [])
    environ = {k: v for k, v in os.environ.items() if k != "MARK" and not k.startswith("KILL_")}
    if not compiled:
        environ["SCRATCHOPT_BACKEND"] = "numpy"
    environ.update(env or {})
    return subprocess.run(args, env=environ, capture_output=True, text=True, timeout=120, check=False)


def finish(workdir, save_freq=None, limit=6, compiled=False):
    """Restart until the run exits with 0; the number of restarts."""
    for restarts in range(1, limit + 1):
        done = run(workdir, save_freq, compiled=compiled)
        if done.returncode == 0:
            return restarts
        assert done.returncode == -signal.SIGKILL, done.stderr
    raise AssertionError("the run did not finish")


def result(workdir):
    with np.load(Path(workdir) / "result.npz") as f:
        return {k: f[k] for k in f.files}


def killed_then_finished(workdir, save_freq, env, expect_batch=False, compiled=False):
    first = run(workdir, save_freq, env, compiled)
    assert first.returncode == -signal.SIGKILL, (first.returncode, first.stderr)
    assert not (Path(workdir) / "result.npz").exists()
    backup = Path(workdir) / "backup"
    assert any(p.name.startswith(".tmp-") for p in backup.iterdir()) or not env.get("KILL_REPLACE")
    if expect_batch:  # the backup it resumes from is a mid-epoch one
        meta, _ = saving.read(backup / "latest.checkpoint")
        assert int(meta["extra"]["position"]["batch"]["int"]) > 0
    finish(workdir, save_freq, compiled=compiled)
    return result(workdir)


def random_kills(workdir, save_freq, kills, seed):
    """Start the run, kill it a random delay after it starts training, ``kills`` times."""
    draw = random.Random(seed)
    mark = Path(workdir) / "started"
    landed = 0
    for _ in range(kills):
        mark.unlink(missing_ok=True)
        args = [sys.executable, str(SCRIPT), str(workdir), str(save_freq)]
        process = subprocess.Popen(args, env=dict(os.environ, MARK=str(mark), SCRATCHOPT_BACKEND="numpy"),
                                   stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not mark.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(draw.uniform(0.0, 0.08))
        process.send_signal(signal.SIGKILL)
        landed += process.wait() == -signal.SIGKILL
    assert landed >= 1  # a kill landed before the run finished (training lasts > 0.1 s)
    finish(workdir, save_freq)
    assert not any(p.name.startswith(".tmp-") for p in (Path(workdir) / "backup").iterdir()) \
        if (Path(workdir) / "backup").exists() else True
    return result(workdir), landed


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture(scope="module")
def chains(tmp_path_factory):
    base = tmp_path_factory.mktemp("backup")
    jobs = {
        "reference": lambda d: (run(d).check_returncode(), result(d))[1],
        "epoch 3, before its backup": lambda d: killed_then_finished(d, None, {"KILL_EPOCH": "3"}),
        "mid-epoch backup, before os.replace": lambda d: killed_then_finished(d, 4, {"KILL_REPLACE": "5"},
                                                                               expect_batch=True),
        "inside os.fsync": lambda d: killed_then_finished(d, None, {"KILL_FSYNC": "9"}, compiled=True),
        # 6 batches an epoch: every backup is at an epoch's last batch, before its end
        "backup after an epoch's last batch": lambda d: killed_then_finished(d, 6, {"KILL_EPOCH": "2"},
                                                                             expect_batch=True),
        "random moments": lambda d: random_kills(d, 5, kills=2, seed=1)[0],
    }
    for i in range(len(jobs)):
        (base / f"run{i}").mkdir()
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(job, base / f"run{i}") for i, (name, job) in enumerate(jobs.items())}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("chain", ["epoch 3, before its backup", "mid-epoch backup, before os.replace",
                                   "inside os.fsync", "backup after an epoch's last batch", "random moments"])
def test_killed_run_resumes_bit_identical(chains, chain):
    reference, resumed = chains["reference"], chains[chain]
    assert sorted(resumed) == sorted(reference)
    different = [k for k in reference if not same_bits(reference[k], resumed[k])]
    assert not different, f"{chain}: {different}"


def test_reference_run_is_not_trivial(chains):
    """The run stops early, after reducing the learning rate: every restored counter matters."""
    reference = chains["reference"]
    assert int(reference["stop_stopped_epoch"]) > 0
    assert float(reference["opt_lr"]) < 0.01
    assert bool(reference["stop_training"])


# --- the backup file itself ---------------------------------------------------------------------------


def _backup_train():
    sys.path.insert(0, str(HERE))
    try:
        import backup_train
    finally:
        sys.path.remove(str(HERE))
    return backup_train


def _fit(tmp_path, callbacks, epochs=3, model=None, **kwargs):
    """``backup_train``'s model (or ``model``) fitted on its data."""
    backup_train = _backup_train()
    x, y = backup_train.data()
    model = backup_train.make_model() if model is None else model
    model.fit(x, y, epochs=epochs, batch_size=8, validation_split=0.25, seed=7, verbose=0,
              callbacks=callbacks, **kwargs)
    return model


def test_corrupt_latest_falls_back_to_the_kept_one(tmp_path):
    backup_dir = tmp_path / "backup"
    _fit(tmp_path, [cb.BackupAndRestore(backup_dir, double_checkpoint=True, delete_checkpoint=False)])
    latest = backup_dir / "latest.checkpoint"
    assert (backup_dir / "latest.checkpoint.bkp").exists()
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])  # truncated
    model = _fit(tmp_path, [cb.BackupAndRestore(backup_dir, double_checkpoint=True, delete_checkpoint=False)],
                 epochs=3)
    # the .bkp held the state after epoch 2 (of 3): one more epoch ran, from there
    assert model.optimizer.iterations == 3 * 6


def test_corrupt_backup_without_a_kept_one_raises_naming_it(tmp_path):
    backup_dir = tmp_path / "backup"
    _fit(tmp_path, [cb.BackupAndRestore(backup_dir, delete_checkpoint=False)])
    latest = backup_dir / "latest.checkpoint"
    data = bytearray(latest.read_bytes())
    data[len(data) // 3] ^= 0xFF  # one flipped byte: a CRC failure (or an unreadable zip)
    latest.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="latest.checkpoint"):
        _fit(tmp_path, [cb.BackupAndRestore(backup_dir, delete_checkpoint=False)])


def test_backup_dir_is_deleted_at_the_end_by_default(tmp_path):
    backup_dir = tmp_path / "backup"
    _fit(tmp_path, [cb.BackupAndRestore(backup_dir)])
    assert not backup_dir.exists()


def test_a_finished_backup_resumes_into_no_more_epochs(tmp_path):
    """A backup written after the last epoch: the restarted fit trains no more."""
    backup_dir = tmp_path / "backup"
    first = _fit(tmp_path, [cb.BackupAndRestore(backup_dir, delete_checkpoint=False)], epochs=2)
    again = _fit(tmp_path, [cb.BackupAndRestore(backup_dir, delete_checkpoint=False)], epochs=2)
    assert again.optimizer.iterations == first.optimizer.iterations
    assert all(same_bits(a, b) for a, b in zip(first.get_weights(), again.get_weights()))


def test_other_callbacks_must_match(tmp_path):
    backup_dir = tmp_path / "backup"
    _fit(tmp_path, [cb.BackupAndRestore(backup_dir, delete_checkpoint=False), cb.EarlyStopping()])
    with pytest.raises(ValueError, match="same callbacks"):
        _fit(tmp_path, [cb.BackupAndRestore(backup_dir, delete_checkpoint=False)])


def test_the_dropout_seed_state_is_restored_and_must_fit_the_model(tmp_path):
    """The backup holds Dropout's place in its seed sequence: restored, the next mask is the
    one the first run would have drawn next. A model whose Dropout draws nothing (rate 0)
    has no such state: refused before anything changes."""
    backup_dir = tmp_path / "backup"
    first = _fit(tmp_path, [cb.BackupAndRestore(backup_dir, delete_checkpoint=False)], epochs=2)
    drawn = list(first.layers[2]._seeds.state)
    assert drawn[1] > 0  # the first run spent seed pairs
    again = _fit(tmp_path, [cb.BackupAndRestore(backup_dir, delete_checkpoint=False)], epochs=2)
    assert again.layers[2]._seeds.state == drawn  # restored, and no epoch left to draw in

    model = _backup_train().make_model()
    model.layers[2] = Dropout(0.0)
    with pytest.raises(ValueError, match="random state for Dropout._seeds"):
        _fit(tmp_path, [cb.BackupAndRestore(backup_dir, delete_checkpoint=False)], epochs=2, model=model)
    # checked before the weights were loaded: the model still has its own initial weights
    assert model.optimizer.iterations == 0
    assert not any(same_bits(a, b) for a, b in zip(model.get_weights(), first.get_weights()))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"backup_dir": ""}, ValueError, "Empty `backup_dir`"),
    ({"backup_dir": 3}, TypeError, "backup_dir"),
    ({"backup_dir": "b", "save_freq": "batch"}, ValueError, "save_freq"),
    ({"backup_dir": "b", "save_freq": 0}, ValueError, "save_freq"),
    ({"backup_dir": "b", "save_freq": True}, ValueError, "save_freq"),
    ({"backup_dir": "b", "double_checkpoint": 1}, TypeError, "double_checkpoint"),
    ({"backup_dir": "b", "delete_checkpoint": "yes"}, TypeError, "delete_checkpoint"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        cb.BackupAndRestore(**kwargs)
