"""Results are never lost: the output folder is checked before training, results are
written atomically, and the CLI turns every bad argument into an argparse error."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.experiments import get_config
from attnlab.experiments.real_tasks import run_synthsent
from attnlab.experiments.results import Result, check_out_dir, load_result
from attnlab.experiments.run import main


def test_out_is_checked_before_any_work(tmp_path, monkeypatch):
    import attnlab.experiments.real_tasks as rt

    def no_training(*a, **k):
        raise AssertionError("training started before the output folder was checked")

    monkeypatch.setattr(rt, "synthsent", no_training)
    cfg = get_config("synthsent", "test")
    for bad, msg in (("", "must not be empty"), ("/", "filesystem root")):
        with pytest.raises(ValueError, match=msg):
            run_synthsent(cfg, out=bad, progress=False)
    f = tmp_path / "a_file"
    f.write_text("x")
    with pytest.raises(ValueError, match="existing file"):
        run_synthsent(cfg, out=f, progress=False)
    with pytest.raises(TypeError, match="out must be a folder path"):
        check_out_dir(3)
    assert check_out_dir(tmp_path / "new" / "dir").is_dir()


def test_save_is_atomic(tmp_path, monkeypatch):
    r = Result("demo", arrays={"a": np.arange(3.0)}, meta={"k": 1})
    path = r.save(tmp_path / "demo.npz")
    assert np.array_equal(load_result(path)["a"], np.arange(3.0))

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        Result("demo", arrays={"a": np.zeros(5)}).save(path)
    monkeypatch.undo()
    assert np.array_equal(load_result(path)["a"], np.arange(3.0))  # the old result is intact
    assert [p.name for p in tmp_path.iterdir()] == ["demo.npz"]  # no temporary file left


@pytest.mark.parametrize("args,msg", [
    (["imdb", "--device", "tpu"], "--device must be one of"),
    (["imdb", "--seeds", "-1"], "--seeds must be >= 0"),
    (["synthsent", "--config", "cpu"], "preset 'cpu' is not defined"),
    (["imdb", "--out", "/"], "filesystem root"),
    (["imdb", "--threads", "0"], "--threads must be >= 1"),
])
def test_cli_errors_are_argparse_errors(args, msg, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_cli_rejects_a_missing_gpu(capsys, monkeypatch):
    import attnlab.experiments.run as cli

    monkeypatch.setattr(cli, "available_devices", lambda: ["cpu"])
    with pytest.raises(SystemExit):
        main(["imdb", "--device", "cuda"])
    assert "not available on this machine" in capsys.readouterr().err
