"""Every command that writes a file or a folder guards it before any work (cenn.outputs): an output
that is an input, a file of the user's, a missing, unwritable or non-folder parent, or a folder
where a file is meant (a user's folder where a cenn folder is meant) is refused with one line
naming the path, exit status 2, and nothing on disk changes. Devices, the order of experiment
steps and Ctrl-C are refused or reported the same way."""

import errno
import os
import shutil
from importlib import resources
from pathlib import Path

import pytest

from cenn.cli import main
from cenn.outputs import mark

#: Every command that writes, and how it is called with the output OUT (tmp_path holds the inputs).
COMMANDS = {
    "simulate": lambda t, out: ["simulate", out, "-n", "1", "--config", t / "sim.toml", "--no-progress"],
    "train": lambda t, out: ["train", out, "--train", t / "store.zarr", "--val", t / "store.zarr",
                             "--no-progress"],
    "evaluate": lambda t, out: ["evaluate", t / "store.zarr", "--out", out, "--methods", "ilc",
                                "--no-progress"],
    "predict": lambda t, out: ["predict", t / "in.npy", out, "--frequencies", "143,217,353",
                               "--pixel-arcsec", "90"],
    "predict-maps": lambda t, out: ["predict", "--maps", t / "a.fits", t / "b.fits", t / "c.fits", "--out",
                                    out, "--method", "ilc", "--no-progress"],
    "export-weights": lambda t, out: ["export-weights", t / "w.safetensors", out],
    "demo": lambda t, out: ["demo", "--out", out, "--patches", "1", "--methods", "ilc", "--weights",
                            t / "w.safetensors", "--no-progress"],
    "experiment": lambda t, out: ["experiment", t / "cfg" / "exp.toml", "--out", out, "--no-progress"],
}
#: The output name each command writes: a file (with its extension) or a folder.
NAMES = {"simulate": "x.zarr", "train": "run", "evaluate": "report", "predict": "x.npy",
         "predict-maps": "x.fits", "export-weights": "x.safetensors", "demo": "demo", "experiment": "exp"}
FILE_OUTPUTS = {"predict", "predict-maps", "export-weights"}
#: An input of each command, given as its output (with --overwrite where the command has it).
INPUTS = {"simulate": "sim.toml", "train": "store.zarr", "evaluate": "store.zarr", "predict": "in.npy",
          "predict-maps": "b.fits", "export-weights": "w.safetensors", "demo": "w.safetensors",
          "experiment": "cfg"}
OVERWRITE = {"simulate", "train", "evaluate", "predict", "predict-maps", "export-weights"}
CASES = ("output is an input", "a file of the user's", "parent missing", "parent is a file",
         "parent read-only", "a folder where a file is meant")


@pytest.fixture
def inputs(tmp_path, tiny_weights):
    """The inputs every case may read (none is read before the refusal)."""
    (tmp_path / "sim.toml").write_text("seed = 1\n")
    (tmp_path / "store.zarr").mkdir()
    (tmp_path / "store.zarr" / "zarr.json").write_text("{}")
    (tmp_path / "in.npy").write_bytes(b"maps")
    for name in "abc":
        (tmp_path / f"{name}.fits").write_bytes(b"band")
    tiny_weights(tmp_path / "w.safetensors")
    (tmp_path / "cfg").mkdir()
    shipped = resources.files("cenn").joinpath("configs", "paper-smoke.toml")
    shutil.copy(str(shipped), tmp_path / "cfg" / "exp.toml")
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "locked").mkdir()
    return tmp_path


def snapshot(root: Path) -> dict[str, tuple[bool, int, int, int]]:
    """Every file and folder under ``root``: kind, size, mode and modification time."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        found[str(path.relative_to(root))] = (path.is_dir(), info.st_size, info.st_mode, info.st_mtime_ns)
    return found


def read_only(folder: Path, monkeypatch) -> None:
    """Make ``folder`` unwritable: by its mode, and for root (whom modes do not stop) as ``os.access``
    sees it."""
    folder.chmod(0o500)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: real(p, mode, *a, **k) and not (
            mode & os.W_OK and os.path.exists(p) and os.path.samefile(p, folder)))


def refused(argv, capsys) -> str:
    """Run ``cenn`` with ``argv``: exit status 2 and one line naming the command; returns it."""
    command = str(argv[0])
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cenn {command}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "[Errno" not in err, err
    return err


def _case(tmp_path: Path, command: str, case: str, monkeypatch) -> tuple[list, Path, list[str]]:
    """(arguments, the path the message names, extra arguments) of ``case`` for ``command``."""
    name = NAMES[command]
    extra: list[str] = []
    if case == "output is an input":
        out = tmp_path / INPUTS[command]
        extra = ["--overwrite"] if command in OVERWRITE else []
        return COMMANDS[command](tmp_path, out), out, extra
    if case == "a file of the user's":
        out = tmp_path / ("old" + Path(name).suffix if command in FILE_OUTPUTS else "notes.txt")
        out.write_text("the user's")
        return COMMANDS[command](tmp_path, out), out, extra
    if case == "parent missing":
        return COMMANDS[command](tmp_path, tmp_path / "nodir" / name), tmp_path / "nodir", extra
    if case == "parent is a file":
        return COMMANDS[command](tmp_path, tmp_path / "afile" / name), tmp_path / "afile", extra
    if case == "parent read-only":
        read_only(tmp_path / "locked", monkeypatch)
        return COMMANDS[command](tmp_path, tmp_path / "locked" / name), tmp_path / "locked", extra
    # a folder where a file is meant; for a folder output, a folder of the user's (with --overwrite
    # where the command has it: cenn only ever replaces its own folders)
    out = tmp_path / ("mine" + Path(name).suffix)
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    extra = ["--overwrite"] if command in OVERWRITE else []
    return COMMANDS[command](tmp_path, out), out, extra


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_output_is_guarded_before_any_work(inputs, command, case, capsys, monkeypatch):
    mode = (inputs / "locked").stat().st_mode
    argv, named, extra = _case(inputs, command, case, monkeypatch)
    before = snapshot(inputs)
    try:
        err = refused([*argv, *extra], capsys)
        assert snapshot(inputs) == before
    finally:
        (inputs / "locked").chmod(mode)
    assert str(named) in err
    if case == "output is an input":
        assert "an input of this command" in err


# --- the cases of each class that the matrix above does not name --------------------------------

def test_export_weights_replaces_a_file_only_when_asked_and_never_its_input(inputs, capsys):
    weights, out = inputs / "w.safetensors", inputs / "half.safetensors"
    out.write_bytes(b"the user's")
    err = refused(["export-weights", weights, out], capsys)
    assert f"{out} exists: choose another output or pass --overwrite" in err
    assert out.read_bytes() == b"the user's"
    assert main(["export-weights", str(weights), str(out), "--overwrite"]) == 0
    from cenn.model import load_weights

    load_weights(out)
    before = weights.read_bytes()
    err = refused(["export-weights", weights, weights, "--overwrite"], capsys)
    assert "is also the input" in err and weights.read_bytes() == before
    link = inputs / "link.safetensors"
    link.symlink_to(weights)
    assert "is also the input" in refused(["export-weights", weights, link, "--overwrite"], capsys)
    hard = inputs / "hard.safetensors"
    os.link(weights, hard)
    assert "is also the input" in refused(["export-weights", hard, weights, "--overwrite"], capsys)
    assert weights.read_bytes() == before


def test_a_write_that_fails_is_one_line_naming_the_output(inputs, capsys, monkeypatch):
    real = os.replace

    def full(src, dst, *args, **kwargs):
        if str(dst).endswith("x.safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device", str(src))
        return real(src, dst, *args, **kwargs)

    out = inputs / "x.safetensors"
    monkeypatch.setattr(os, "replace", full)
    before = snapshot(inputs)
    err = refused(["export-weights", inputs / "w.safetensors", out], capsys)
    assert f"{out}: the disk is full (No space left on device) writing the weights file: free space" in err
    assert ".tmp" not in err
    assert snapshot(inputs).keys() == before.keys()  # the temporary file is gone


def test_predict_outputs_are_never_an_input_or_one_another(inputs, capsys):
    base = ["predict", inputs / "in.npy", inputs / "cmb.npy", "--frequencies", "143,217,353",
            "--pixel-arcsec", "90", "--overwrite"]
    (inputs / "sigma.npy").write_bytes(b"sigma")
    before = snapshot(inputs)
    err = refused([*base, "--uncertainty", inputs / "cmb.npy"], capsys)
    assert "--uncertainty" in err and "is also OUTPUT" in err
    sigma = inputs / "sigma.npy"
    err = refused([*base, "--uncertainty", sigma, "--noise-sigma", sigma], capsys)
    assert "is also --noise-sigma" in err
    err = refused([*base, "--uncertainty", inputs / "in.npy"], capsys)
    assert "is also INPUT" in err
    store = inputs / "store.zarr"
    err = refused(["predict", store, store / "cmb.npy", "--overwrite"], capsys)
    assert "lies inside INPUT" in err
    assert snapshot(inputs) == before


def test_full_sky_outputs_are_never_one_of_the_maps(inputs, capsys):
    base = COMMANDS["predict-maps"](inputs, inputs / "cmb.fits")
    before = snapshot(inputs)
    for option, value in (("--mask", "c.fits"), ("--mask", "cmb.fits")):
        err = refused([*base, option, inputs / value, "--mask-above", "50", "--overwrite"], capsys)
        assert f"{option} {inputs / value} is also" in err
    assert snapshot(inputs) == before


def test_simulate_replaces_only_its_own_stores(inputs, capsys, monkeypatch):
    group = inputs / "theirs.zarr"  # a zarr group written by someone else
    group.mkdir()
    (group / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    (group / "data").mkdir()
    before = snapshot(inputs)
    err = refused(["simulate", group, "-n", "1", "--overwrite", "--no-progress"], capsys)
    assert f"{group} is a zarr group that cenn did not write" in err
    monkeypatch.chdir(inputs / "cfg")
    err = refused(["simulate", ".", "-n", "1", "--overwrite", "--no-progress"], capsys)
    assert "holds the working folder" in err
    assert snapshot(inputs) == before


def test_simulate_refuses_a_store_larger_than_the_free_space(inputs, capsys, monkeypatch):
    usage = shutil.disk_usage(inputs)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=10**6))
    before = snapshot(inputs)
    err = refused(["simulate", inputs / "big.zarr", "-n", "1000", "--npix", "64", "--no-progress"], capsys)
    assert f"{inputs / 'big.zarr'}: 1000 patches need about" in err and "1 MB free" in err
    assert snapshot(inputs) == before


def test_simulate_api_refuses_a_patch_count_that_is_no_whole_number(tmp_path):
    from cenn.data.simulate import simulate

    for n in (2.5, "2", True):
        with pytest.raises(ValueError, match="whole number of patches"):
            simulate(tmp_path / "x.zarr", n)
    assert not list(tmp_path.iterdir())


def test_demo_never_writes_over_the_users_files(inputs, capsys):
    demo = COMMANDS["demo"]
    own = inputs / "mine"
    own.mkdir()
    (own / "demo.toml").write_text("my own settings\n")
    before = snapshot(inputs)
    err = refused([*demo(inputs, own), "--overwrite"], capsys)
    assert f"{own} exists and is not a cenn demo folder" in err
    # a demo folder of cenn's with a report folder of the user's: refused before any simulation
    earlier = inputs / "earlier"
    (earlier / "report").mkdir(parents=True)
    mark(earlier, "demo")
    (earlier / "report" / "notes.txt").write_text("mine")
    before = snapshot(inputs)
    err = refused(demo(inputs, earlier), capsys)
    assert f"{earlier / 'report'} is not a cenn report folder" in err
    assert snapshot(inputs) == before and not (earlier / "data").exists()
    (earlier / "demo.toml").write_text("mine = 1\n")  # a demo.toml that is not the demo's
    before = snapshot(inputs)
    assert "holds demo.toml, which cenn did not write" in refused(demo(inputs, earlier), capsys)
    assert snapshot(inputs) == before


def test_experiment_steps_name_the_missing_step(inputs, capsys, monkeypatch):
    config, out = inputs / "cfg" / "exp.toml", inputs / "exp"
    base = ["experiment", config, "--out", out, "--no-progress"]
    for steps in ("train", "evaluate", "train,evaluate"):
        err = refused([*base, "--steps", steps], capsys)
        assert "which the simulate step makes" in err and "--steps simulate` first" in err
    monkeypatch.setattr("cenn.experiment._finished_store", lambda path: True)
    err = refused([*base, "--steps", "evaluate"], capsys)
    assert "weights.safetensors, which the train step makes, is missing" in err
    assert f"cenn experiment {config} --out {out} --steps train` first" in err
    assert not out.exists()


@pytest.mark.parametrize("device, words", [("cuda", "no CUDA GPU is available on this machine"),
                                           ("bogus", "unknown; use one of")])
@pytest.mark.parametrize("command", ["simulate", "evaluate", "predict", "predict-maps", "demo", "experiment",
                                     "train"])
def test_devices_are_checked_before_any_work(inputs, command, device, words, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    option = "--accelerator" if command == "train" else "--device"
    value = {"cuda": "gpu", "bogus": "bogus"}[device] if command == "train" else device
    before = snapshot(inputs)
    err = refused([*COMMANDS[command](inputs, inputs / NAMES[command]), option, value], capsys)
    assert f"{option} {value}: {words}" in err
    assert snapshot(inputs) == before


def test_the_python_api_refuses_devices_with_a_value_error(inputs, monkeypatch):
    from cenn.predict import Predictor
    from cenn.sky.simulator import PatchSimulator

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ValueError, match="device bogus: unknown"):
        PatchSimulator(device="bogus")
    with pytest.raises(ValueError, match=r"device cuda: no CUDA GPU .*use device cpu"):
        PatchSimulator(device="cuda")
    with pytest.raises(ValueError, match="device cuda:0: no CUDA GPU"):
        Predictor(inputs / "w.safetensors", device="cuda:0")


@pytest.mark.parametrize("command, runner, words", [
    ("simulate", "simulate", "chunks already written are kept"),
    ("train", "train", "checkpoints/last.ckpt"),
    ("evaluate", "evaluate", "no report was written"),
    ("predict", "predict", "no output was left half-written"),
    ("predict-maps", "predict", "no output was left half-written"),
    ("export-weights", "export_weights", "no output was written"),
    ("demo", "demo", "data already simulated are kept"),
    ("experiment", "experiment", "finished steps"),
])
def test_ctrl_c_is_one_line_saying_what_was_kept(inputs, command, runner, words, capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(f"cenn.cli.{runner}.run", interrupted)
    argv = [str(a) for a in COMMANDS[command](inputs, inputs / NAMES[command])]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"cenn {argv[0]}: interrupted: ") and words in err
    assert "rerun the same command" in err and "Traceback" not in err


def test_ctrl_c_during_simulate_ends_in_one_line_and_keeps_the_chunks_written(tmp_path):
    """A real SIGINT to ``cenn simulate``: exit 130, one line, no traceback; the chunks written are
    kept for the same command to resume."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "x.zarr"
    argv = [sys.executable, "-m", "cenn", "simulate", str(out), "-n", "64", "--npix", "64", "--chunk-size",
            "1", "--batch-size", "1", "--no-progress"]
    # SIGINT back to its default in the child: a test run started in the background by a shell
    # without job control inherits it ignored, and the command would then never see Ctrl-C
    run = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(out.glob(".cenn/progress/chunk-*.done")) and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    err = run.communicate(timeout=60)[1].strip()
    assert run.returncode == 130, err
    assert "Traceback" not in err and err.count("\n") == 0, err
    assert err.startswith("cenn simulate: interrupted: the chunks already written are kept"), err
    from cenn.data.store import DatasetStore

    store = DatasetStore.open(out)
    assert 0 < len(store.pending_chunks()) < 64  # some written, kept; the rest pending
