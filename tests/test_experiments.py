"""Part III experiments: test configurations end to end, results I/O, models, configs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from attnlab.experiments import (
    RUNNERS,
    Attention,
    ModelConfig,
    Result,
    build_model,
    difference,
    first_step,
    frozen_features,
    gap_curve,
    get_config,
    load_result,
    pick_step,
    pretrained_classifier,
    readout_attention,
    relapse_share,
    stored_result,
    stored_summary,
    write_summary,
)
from attnlab.experiments.config import config_dict
from attnlab.experiments.run import main as cli_main

STORED = Path(__file__).resolve().parents[1] / "src" / "attnlab" / "experiments" / "stored"


pytestmark = pytest.mark.usefixtures("one_thread")


def _final(res, variant, metric):
    return float(np.mean(res.arrays[f"{variant}/{metric}"][:, -1]))


def test_pathfinder_test_config_beats_chance_on_train(tmp_path):
    res = RUNNERS["pathfinder"](get_config("pathfinder", "test"), device="cpu",
                                progress=False, out=tmp_path)
    best = max(_final(res, k, "train_acc") for k in ("softmax", "gaussian"))
    assert best > 0.6
    for k in ("softmax", "gaussian"):  # training lowered the training loss
        tl = res.arrays[f"{k}/train_loss"][0]
        assert tl[-1] < tl[0]
    again = load_result(tmp_path / "pathfinder.npz")
    assert again.experiment == "pathfinder"
    np.testing.assert_array_equal(again["softmax/test_acc"], res["softmax/test_acc"])
    assert again.meta["config"]["difficulty"] == 6
    assert again["images"].shape[1:] == (32, 32)


def test_imdb_test_config_beats_chance_on_train():
    res = RUNNERS["imdb"](get_config("imdb", "test"), device="cpu", progress=False)
    assert max(_final(res, k, "train_acc") for k in ("softmax", "gaussian")) > 0.55
    assert "offline" in res.meta["note"]


def test_modular_test_config_fits_training_set():
    res = RUNNERS["modular"](get_config("modular", "test"), device="cpu", progress=False)
    chance = res.meta["chance"]
    for v in ("L1-softmax", "L1-convex"):
        assert _final(res, v, "train_acc") > 5 * chance


@pytest.mark.parametrize("features", ["trained", "random"])
def test_student_teacher_test_config(features):
    cfg = get_config("student_teacher", "test", features=features)
    res = RUNNERS["student_teacher"](cfg, progress=False)
    # relative error 1 = predicting the mean: all three students must beat it on train
    for k in ("gd/train_err", "convex/train_err", "heads/train_err"):
        assert float(np.ravel(res[k])[-1]) < 0.9
    # nonconvex heads cannot beat the convex optimum of the same objective
    assert res["heads/objective"].min() >= res["convex/primal"][0] * (1 - 1e-6)
    assert np.allclose(res["teacher/attn"].sum(-1), 1.0)
    S = len(cfg.seeds)
    assert res["teacher/attn"].shape == res["gd/attn"].shape == (S, cfg.heads, cfg.n)
    assert res["convex/token_norm"].shape == (S, cfg.n)
    assert res.meta["features"] == features
    if features == "trained":
        assert res.meta["pretrain_acc"] > 0.75  # SynthSent is balanced: chance is 0.5
    else:
        assert res.meta["pretrain_acc"] is None


def test_frozen_features_trained():
    cfg = get_config("student_teacher", "test")
    model, acc = pretrained_classifier(cfg)
    assert not any(p.requires_grad for p in model.parameters())
    X = frozen_features(cfg, 20, seed=0, model=model, N_test=10)
    assert X.shape == (30, cfg.n, cfg.D) and X.dtype == torch.float64
    # LayerNorm output (before its affine map each token has mean 0): not all tokens equal
    assert torch.isfinite(X).all() and X.std(1).mean() > 0.1


@pytest.mark.parametrize("pad_mask", [False, True])
def test_attention_input_is_what_the_attention_receives(pad_mask):
    cfg = ModelConfig(D=8, hidden=16, heads=2, head_dim=4, layers=3, dropout=0.0, pos_std=1.0)
    model = build_model(cfg, "softmax", vocab=7, n_tokens=5, classes=2, seed=0,
                        pad_mask=pad_mask).eval()
    x = torch.randint(0, 7, (4, 5), generator=torch.Generator().manual_seed(0))
    seen = {}
    hooks = [b.attn.register_forward_hook(
        lambda mod, args, out, i=i: seen.__setitem__(i, args[0].detach()))
        for i, b in enumerate(model.blocks)]
    with torch.no_grad():
        model(x)
        for i in range(3):
            assert torch.allclose(model.attention_input(x, i), seen[i], atol=1e-6)
        assert torch.allclose(model.attention_input(x, -1), seen[2], atol=1e-6)
        assert not torch.allclose(seen[1], seen[2])
    for h in hooks:
        h.remove()
    with pytest.raises(ValueError, match="layer"):
        model.attention_input(x, 3)


def test_student_teacher_config_validation():
    with pytest.raises(ValueError, match="features"):
        get_config("student_teacher", "test", features="bert")
    with pytest.raises(ValueError, match="n must be"):  # SynthSent needs n >= 4 k
        get_config("student_teacher", "test", k=3)
    assert get_config("student_teacher", "test", k=3, features="random").n == 6


def test_landscape_test_config(tmp_path):
    cfg = get_config("landscape", "test", points=5, n_directions=1, stage1_epochs=2,
                     stage2_epochs=1)
    res = RUNNERS["landscape"](cfg, device="cpu", progress=False, out=tmp_path)
    for k in ("softmax", "gaussian"):
        sl = res[f"{k}/slice"]
        assert sl.shape == (1, 1, 5) and np.isfinite(sl).all()
    assert load_result(tmp_path / "landscape").arrays.keys() == res.arrays.keys()


@pytest.mark.parametrize("kernel", ["softmax", "gaussian", "convex"])
def test_attention_shapes_and_rows(kernel):
    att = Attention(8, 2, 4, kernel, n_tokens=5)
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    S = att.attention(x)
    assert S.shape == (3, 2, 5, 5)
    assert att(x).shape == (3, 5, 8)
    if kernel == "gaussian":  # unnormalized Gaussian kernel: entries in (0, 1], diagonal of
        assert (S > 0).all() and (S <= 1).all()  # exp(-|q-k|^2/(2 sqrt d)) is not 1
    else:
        torch.testing.assert_close(S.sum(-1), torch.ones(3, 2, 5))
    mask = torch.tensor([[True] * 3 + [False] * 2] * 3)
    Sm = att.attention(x, mask)
    assert torch.all(Sm[..., 3:] == 0)
    if kernel != "gaussian":
        torch.testing.assert_close(Sm.sum(-1), torch.ones(3, 2, 5))


def test_gaussian_matches_kernel_function():
    from attnlab import gaussian_kernel

    att = Attention(8, 1, 4, "gaussian")
    x = torch.randn(2, 5, 8, dtype=torch.float32, generator=torch.Generator().manual_seed(1))
    q, k, _ = att.qkv(x).chunk(3, dim=-1)
    ref = gaussian_kernel(q.detach().numpy(), k.detach().numpy())
    np.testing.assert_allclose(att.attention(x)[:, 0].detach().numpy(), ref, rtol=1e-5)


def test_model_outputs_and_seeding():
    cfg = ModelConfig(D=8, hidden=16, heads=2, head_dim=4, layers=2, dropout=0.0)
    x = torch.randint(1, 20, (4, 6), generator=torch.Generator().manual_seed(0))
    for kernels in ("softmax", ("softmax", "convex"), "gaussian"):
        m1 = build_model(cfg, kernels, vocab=20, n_tokens=6, classes=3, seed=1)
        m2 = build_model(cfg, kernels, vocab=20, n_tokens=6, classes=3, seed=1)
        torch.testing.assert_close(m1(x), m2(x))
        assert m1(x).shape == (4, 3)
    with pytest.raises(ValueError, match="kernels"):
        build_model(cfg, ("softmax",), vocab=20, n_tokens=6, classes=3, seed=0)


def test_readout_attention_shapes():
    X = torch.randn(5, 4, 3, dtype=torch.float64)
    W = torch.randn(2, 3, 2, dtype=torch.float64)
    out, s = readout_attention(X, W, W, torch.randn(2, 3, dtype=torch.float64))
    assert out.shape == (5,) and s.shape == (2, 5, 4)
    torch.testing.assert_close(s.sum(-1), torch.ones(2, 5, dtype=torch.float64))


def test_config_validation():
    with pytest.raises(ValueError, match="experiment"):
        get_config("mnist")
    with pytest.raises(ValueError, match="preset"):
        get_config("imdb", "huge")
    with pytest.raises(ValueError, match="no field 'foo'"):
        get_config("imdb", "short", foo=1)
    with pytest.raises(ValueError, match="kernels"):
        get_config("imdb", "short", kernels=("linear",))
    with pytest.raises(ValueError, match="difficulty"):
        get_config("pathfinder", "short", difficulty=7)
    with pytest.raises(ValueError, match="patch"):
        ModelConfig(patch=5)
    with pytest.raises(TypeError, match="epochs"):
        get_config("imdb", "short", epochs=1.5)
    full = get_config("imdb", "full")
    assert (full.model.D, full.model.hidden, full.model.heads, full.model.head_dim,
            full.model.layers, full.max_length) == (64, 128, 2, 32, 2, 4000)
    assert get_config("modular", "full").p == 97


def test_cli_runs_and_saves(tmp_path, capsys):
    assert cli_main(["student_teacher", "--config", "test", "--out", str(tmp_path),
                     "--no-progress", "--device", "cpu"]) == 0
    assert (tmp_path / "student_teacher.npz").is_file()
    with pytest.raises(FileNotFoundError):
        load_result(tmp_path / "missing.npz")


def test_first_step_per_seed_and_never():
    res = Result("x", {"step": np.array([0.0, 10, 20, 30]),
                       "v/acc": np.array([[0.1, 0.5, 0.95, 0.2],
                                          [0.0, 0.1, 0.2, np.nan]])})
    out = first_step(res, "v/acc", 0.9)
    assert out[0] == 20 and np.isnan(out[1])
    np.testing.assert_array_equal(first_step(res, "v/acc", 0.5), [10, np.nan])
    np.testing.assert_array_equal(first_step(res, "v/acc", 0.0), [0, 0])
    with pytest.raises(ValueError, match="log points"):
        first_step(Result("x", {"step": np.arange(3.0), "v/acc": np.zeros((1, 4))}),
                   "v/acc", 0.5)


def test_modular_cpu_preset_only_for_modular():
    cfg = get_config("modular", "cpu")
    assert cfg.p == 47 and cfg.steps == 10_000 and cfg.depths == (1, 2)
    assert cfg.kernels == ("softmax", "convex") and len(cfg.seeds) >= 2
    assert cfg.steps % cfg.eval_every == 0
    with pytest.raises(ValueError, match="not defined for 'synthsent'"):
        get_config("synthsent", "cpu")
    with pytest.raises(SystemExit):  # the CLI offers "cpu" for all: an argparse error
        cli_main(["synthsent", "--config", "cpu", "--no-progress", "--device", "cpu"])


def test_committed_modular_result_matches_cpu_preset():
    """The shipped file stored/cpu/modular.npz was made by the "cpu" preset; changing the
    preset without rerunning it fails here. stored_result finds it through the package."""
    res = stored_result("modular", "cpu")
    again = load_result(STORED / "cpu" / "modular.npz")
    np.testing.assert_array_equal(res["L1-softmax/test_acc"], again["L1-softmax/test_acc"])
    cfg, saved = get_config("modular", "cpu"), res.meta["config"]
    for name in ("p", "train_fraction", "steps", "eval_every", "lr", "weight_decay",
                 "batch_size"):
        assert saved[name] == getattr(cfg, name), name
    assert tuple(saved["seeds"]) == cfg.seeds and tuple(saved["depths"]) == cfg.depths
    for name in ("D", "hidden", "heads", "head_dim", "dropout", "pooling"):
        assert saved["model"][name] == getattr(cfg.model, name), name
    T = cfg.steps // cfg.eval_every + 1
    for v in res.meta["variants"]:
        assert res[f"{v}/test_acc"].shape == (len(cfg.seeds), T)
    assert (STORED / "cpu" / "modular.npz").stat().st_size < 1_000_000
    with pytest.raises(ValueError, match="no stored result.*stored: \\[.*'cpu/modular'"):
        stored_result("synthsent", "cpu")


def test_relapse_share():
    res = Result("x", {"step": np.arange(6.0),
                       "v/acc": np.array([[0.0, 0.95, 0.5, 0.95, 0.95, 0.4],
                                          [0.0, 0.1, 0.92, 0.93, 0.94, 0.95],
                                          [0.0] * 6])})
    out = relapse_share(res, "v/acc", 0.9)
    np.testing.assert_allclose(out[:2], [2 / 5, 0.0])
    assert np.isnan(out[2])


def test_pick_step_prefers_accuracy_then_loss_then_small_steps():
    grid = (0.01, 0.1, 1.0)
    assert pick_step(grid, [0.7, 0.8, 0.75], [0.5, 0.6, 0.4]) == 0.1
    assert pick_step(grid, [0.8, 0.8, 0.5], [0.5, 0.4, 0.1]) == 0.1  # tie: lower loss
    assert pick_step(grid, [0.8, 0.8, 0.8], [0.4, 0.4, 0.4]) == 0.01  # then smaller step
    assert pick_step(grid, [0.6, np.nan, 0.5], [0.6, np.nan, 0.7]) == 0.01  # NaN: failed
    assert pick_step(grid, [np.nan] * 3, [np.nan] * 3) == 0.01


def test_sweep_shared_step_and_summary(tmp_path):
    """The sweep picks each kernel's step on the validation split; the Gaussian also runs
    with Softmax's step; summary.json lists the final values per seed."""
    cfg = get_config("pathfinder", "test", lr_grid=(1e-3, 3e-2), n_val=32, epochs=2,
                     evals_per_epoch=2, eval_train=40, seeds=(0, 1))
    res = RUNNERS["pathfinder"](cfg, device="cpu", progress=False)
    assert res.meta["variants"] == ["softmax", "gaussian", "gaussian-shared"]
    lr = res.meta["lr"]
    assert lr["gaussian-shared"] == lr["softmax"] and set(lr.values()) <= set(cfg.lr_grid)
    for k in ("softmax", "gaussian"):  # the chosen step is the sweep's best
        acc, loss = res[f"sweep/{k}/val_acc"], res[f"sweep/{k}/val_loss"]
        assert lr[k] == pick_step(cfg.lr_grid, acc, loss)
    assert res["softmax/test_acc"].shape == (2, 5)
    assert res["epoch"].tolist() == [0, 0.5, 1, 1.5, 2]
    perf = res.meta["perf"]
    assert perf["train_tokens_per_s"] > 0 and 0 <= perf["batch_share"] < 1
    assert res.meta["versions"]["torch"] == torch.__version__
    import os

    umask = os.umask(0o022)  # a result gets the usual permissions, not mkstemp's 0600
    try:
        assert res.save(tmp_path / "pathfinder.npz").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)
    summ = json.loads(write_summary(tmp_path).read_text())
    assert set(summ) == {"pathfinder"}
    g = summ["pathfinder"]["gaussian-shared"]
    assert g["seeds"] == [0, 1] and g["lr"] == lr["softmax"] and g["kernel"] == "gaussian"
    np.testing.assert_allclose(g["test_acc"], res["gaussian-shared/test_acc"][:, -1])
    assert g["mean_test_loss"] == pytest.approx(np.mean(res["gaussian-shared/test_loss"][:, -1]))


def test_word_level_imdb_runs_on_compact_tokens():
    cfg = get_config("imdb", "test", tokens="words", vocab_size=500, truncate="pre",
                     max_length=24, pad_to=None, epochs=1)
    from attnlab.experiments import imdb_data

    (Xtr, ytr, Xte, yte), note = imdb_data(cfg)
    assert Xtr.dtype == torch.int16 and Xtr.shape == (cfg.max_train, 24)
    assert int(Xtr.max()) < 502 and "word tokens" in note and "last 24 words" in note
    res = RUNNERS["imdb"](cfg, device="cpu", progress=False)
    assert np.isfinite(res["softmax/test_loss"]).all()


def test_cli_sets_threads_and_records_the_command(tmp_path):
    before = torch.get_num_threads()
    try:
        assert cli_main(["pathfinder", "--config", "test", "--out", str(tmp_path),
                         "--no-progress", "--device", "cpu", "--threads", "1",
                         "--seeds", "0"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    res = load_result(tmp_path / "pathfinder.npz")
    assert res.meta["command"].endswith("--threads 1 --seeds 0") and res.meta["threads"] == 1
    assert res.meta["preset"] == "test" and res.meta["wall_seconds"] > 0
    assert (tmp_path / "summary.json").is_file()
    with pytest.raises(SystemExit):
        cli_main(["pathfinder", "--config", "test", "--threads", "0"])


@pytest.mark.parametrize("argv", [["imdb", "--config", "test", "--difficulty", "9"],
                                  ["pathfinder", "--config", "test", "--difficulty", "7"]])
def test_cli_difficulty_errors(argv, tmp_path, capsys):
    """--difficulty is for pathfinder only and must be 6, 9 or 14: argparse errors."""
    with pytest.raises(SystemExit) as exc:
        cli_main([*argv, "--out", str(tmp_path)])
    assert exc.value.code == 2 and "--difficulty" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_difficulty_writes_its_own_file(tmp_path):
    """--difficulty 9 runs the preset at contour length 9 into pathfinder_n9.npz."""
    assert cli_main(["pathfinder", "--config", "test", "--difficulty", "9", "--no-progress",
                     "--seeds", "0", "--out", str(tmp_path)]) == 0
    res = load_result(tmp_path / "pathfinder_n9.npz")
    assert res.meta["config"]["difficulty"] == 9 and "--difficulty 9" in res.meta["command"]
    assert "pathfinder_n9" in json.loads((tmp_path / "summary.json").read_text())


def test_cli_conv_preset_writes_its_own_file(tmp_path, monkeypatch):
    """--config cpu_conv writes pathfinder_conv.npz beside pathfinder.npz (here with the
    test sizes: the real preset trains for an hour) and lists it in summary.json."""
    import attnlab.experiments.run as run_mod

    tiny = get_config("pathfinder", "test", model=replace(
        get_config("pathfinder", "test").model, stem="conv"), lr_grid=(1e-3,), n_val=16,
        sweep_epochs=1)
    monkeypatch.setattr(run_mod, "get_config", lambda *a, **k: tiny)
    assert cli_main(["pathfinder", "--config", "cpu_conv", "--no-progress", "--seeds", "0",
                     "--out", str(tmp_path)]) == 0
    res = load_result(tmp_path / "pathfinder_conv.npz")
    assert res.meta["config"]["model"]["stem"] == "conv"
    assert "pathfinder_conv" in json.loads((tmp_path / "summary.json").read_text())
    assert not (tmp_path / "pathfinder.npz").exists()


def _plain(x):
    return json.loads(json.dumps(x))


# Model fields added after a stored run, with the default that reproduces that run's model.
ADDED_MODEL_FIELDS = {"stem": "linear"}


def _same_config(saved: dict, cfg) -> bool:
    """The stored config equals ``cfg``'s, up to model fields added later at their default
    (only when ``cfg`` has that default: a changed value still needs a rerun)."""
    want = _plain(config_dict(cfg))

    def fill(d: dict, w: dict, model: bool = False) -> dict:
        d = dict(d)
        for key, sub in d.items():
            if isinstance(sub, dict) and isinstance(w.get(key), dict):
                d[key] = fill(sub, w[key], model=key == "model")
        for key, default in ADDED_MODEL_FIELDS.items() if model else ():
            if key not in d and w.get(key) == default:
                d[key] = default
        return d

    return fill(saved, want) == want


def test_same_config_fills_only_defaults():
    cfg = get_config("pathfinder", "cpu")
    old = _plain(config_dict(cfg))
    del old["model"]["stem"]
    assert _same_config(old, cfg)
    assert not _same_config(old, replace(cfg, model=replace(cfg.model, stem="conv")))


@pytest.mark.parametrize("task", ["imdb", "pathfinder", "pathfinder_n9", "pathfinder_n14",
                                  "pathfinder_conv", "pathfinder_conv_n9",
                                  "pathfinder_conv_n14"])
def test_stored_cpu_runs_match_their_presets(task):
    """stored/cpu/<task>.npz was made by the "cpu" preset with the CLI (pathfinder_n<d>: the
    same preset at contour length d, ``--difficulty d``; pathfinder_conv: the "cpu_conv"
    preset, pathfinder_conv_n<d> that preset at contour length d): a changed preset without a
    rerun fails here; summary.json agrees with the stored curves."""
    base = task.split("_")[0]
    preset = "cpu_conv" if "_conv" in task else "cpu"
    res, cfg = stored_result(task, "cpu"), get_config(base, preset)
    if "_n" in task:
        d = int(task.split("_n")[1])
        cfg = replace(cfg, difficulty=d)
        assert f"--difficulty {d}" in res.meta["command"]
    assert _same_config(res.meta["config"], cfg)
    assert res.meta["seeds"] == list(cfg.seeds) and len(cfg.seeds) >= 5
    assert res.meta["command"].startswith(f"python -m attnlab.experiments.run {base} "
                                          f"--config {preset} ")
    assert f"--threads {res.meta['threads']}" in res.meta["command"]
    assert res.meta["versions"]["torch"] and res.meta["wall_seconds"] > 0
    assert all(s == "completed" for v in res.meta["stop"].values() for s in v)
    summ = stored_summary("cpu")[task]
    for v in res.meta["variants"]:
        np.testing.assert_allclose(summ[v]["test_acc"], res[f"{v}/test_acc"][:, -1])
        np.testing.assert_allclose(summ[v]["test_loss"], res[f"{v}/test_loss"][:, -1])
        assert summ[v]["lr"] == res.meta["lr"][v] and summ[v]["seeds"] == list(cfg.seeds)
    for k in cfg.kernels:  # each kernel's step is the one its sweep picked
        assert res.meta["lr"][k] == pick_step(cfg.lr_grid, res[f"sweep/{k}/val_acc"],
                                              res[f"sweep/{k}/val_loss"])
    T = cfg.epochs * cfg.evals_per_epoch + 1
    assert res["softmax/test_acc"].shape == (len(cfg.seeds), T)
    assert (STORED / "cpu" / f"{task}.npz").stat().st_size < 200_000


def test_stored_cpu_landscape_matches_its_preset():
    res, cfg = stored_result("landscape", "cpu"), get_config("landscape", "cpu")
    assert _same_config(res.meta["config"], cfg)
    assert res.meta["command"].startswith("python -m attnlab.experiments.run landscape "
                                          "--config cpu")
    imdb = stored_result("imdb", "cpu")  # stage 2 uses the steps the IMDB sweep chose
    assert list(cfg.stage2_lr) == [imdb.meta["lr"][k] for k in ("softmax", "gaussian")]
    # the IMDB preset at Softmax's step; the base's seeds are unused (the landscape has its own)
    assert cfg.base == get_config("imdb", "cpu", lr=imdb.meta["lr"]["softmax"],
                                  seeds=cfg.base.seeds)
    S = len(cfg.seeds)
    for k in ("softmax", "gaussian"):
        assert res[f"{k}/slice"].shape == (S, cfg.n_directions, cfg.points)
        assert np.isfinite(res[f"{k}/slice"]).all()
    assert (res["stage1/test_acc"] > 0.6).all()  # the landscape is around a learned model


def test_difference_is_a_welch_interval():
    res = Result("x", {"a/m": np.array([[0, 1.0], [0, 2.0], [0, 3.0]]),
                       "b/m": np.array([[0, 2.0], [0, 3.0], [0, 4.0]])})
    d = difference(res, "a", "b", "m")
    # equal spreads, n = 3 + 3: se = sqrt(2/3), Welch df = 4, t_0.975(4) = 2.7764
    assert d.mean == pytest.approx(1.0)
    assert d.hi - d.mean == pytest.approx(2.7764451 * np.sqrt(2 / 3), rel=1e-6)
    assert not d.excludes_zero and "95% CI" in str(d)
    far = Result("x", {"a/m": np.array([[0.0], [0.1], [0.2]]),
                       "b/m": np.array([[5.0], [5.1], [5.3]])})
    assert difference(far, "a", "b", "m").excludes_zero
    mean, lo, hi = gap_curve(res, "a", "b", "m")
    assert mean.tolist() == [0.0, 1.0] and lo[1] < 0 < hi[1]
    with pytest.raises(ValueError, match="2 finite runs"):
        difference(Result("x", {"a/m": np.zeros((1, 2)), "b/m": np.zeros((3, 2))}),
                   "a", "b", "m")
    with pytest.raises(ValueError, match="level"):
        difference(res, "a", "b", "m", level=1.0)
    # the first n_seeds runs only: a fourth seed that reverses the sign is left out
    more = Result("x", {"a/m": np.array([[1.0], [2.0], [3.0], [9.0]]),
                        "b/m": np.array([[2.0], [3.0], [4.0], [0.0]])})
    assert difference(more, "a", "b", "m", n_seeds=3).mean == pytest.approx(1.0)
    assert difference(more, "a", "b", "m").mean == pytest.approx(-1.5)
    for bad in (1, 5):
        with pytest.raises(ValueError, match="n_seeds"):
            difference(more, "a", "b", "m", n_seeds=bad)


def test_conv_stem_sees_the_image_the_patches_were_cut_from():
    from attnlab.experiments.models import ConvStem, unpatch
    from attnlab.experiments.real_tasks import _patches

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
    for k in (2, 4, 8):
        img = unpatch(torch.as_tensor(_patches(images, k)), k)
        np.testing.assert_array_equal(img[:, 0].numpy() * 255, images.astype(np.float32))
        out = ConvStem(k)(torch.as_tensor(_patches(images, k)))
        assert out.shape == (3, (32 // k) ** 2, 8 * k)
    # a token of the stem's output is its own patch's region: changing one corner pixel
    # moves tokens near that corner only (receptive field), never the opposite corner
    stem = ConvStem(4).eval()
    x = torch.as_tensor(_patches(images, 4))
    x2 = x.clone()
    x2[:, 0, 0] += 1.0
    moved = (stem(x2) - stem(x)).abs().amax((0, 2)) > 0
    assert moved[0] and not moved[-1]


def test_conv_stem_model_and_validation():
    cfg = ModelConfig(D=16, hidden=16, heads=2, head_dim=8, patch=4, stem="conv")
    model = build_model(cfg, "gaussian", vocab=256, n_tokens=64, classes=2, seed=0,
                        patch_dim=16)
    assert model(torch.rand(5, 64, 16)).shape == (5, 2)
    with pytest.raises(ValueError, match="stem"):
        ModelConfig(stem="resnet")
    with pytest.raises(ValueError, match="stem 'conv' needs image patches"):
        ModelConfig(stem="conv")
    with pytest.raises(ValueError, match="stem 'conv'"):
        build_model(cfg, "softmax", vocab=256, n_tokens=64, classes=2, seed=0, patch_dim=9)


def test_conv_stem_receptive_field_is_what_a_pixel_reaches():
    """The computed receptive field matches the measured one: perturb one pixel of the
    image and see how far (in pixels of the output grid times its stride) tokens move."""
    from attnlab.experiments.models import ConvStem

    for k, want in ((1, 5), (2, 14), (4, 32), (8, 68)):
        assert ConvStem(k).receptive_field == want
    stem = ConvStem(4).eval()  # output grid 8 x 8, stride 4, receptive field 32
    img = torch.zeros(1, 64, 16)
    moved_img = img.clone()
    moved_img[0, 0, 0] = 1.0  # pixel (0, 0)
    moved = ((stem(moved_img) - stem(img)).abs().amax(-1) > 0).view(8, 8)
    # a token at grid (i, j) covers pixels from 4 i - 14 (its centre minus half the field):
    # pixel 0 reaches tokens with 4 i + 1.5 - 16 < 0.5, i.e. i <= 3
    rows = moved.any(1).nonzero().ravel().tolist()
    assert rows == [0, 1, 2, 3]


def test_gpu_check_dry_run_reports_every_step(tmp_path):
    """scripts/gpu_check.py, the prepared command for a machine with a GPU, runs end to end
    without one (device cpu, the 'test' presets) and reports each step."""
    from _scripts import load_script

    out = tmp_path / "gpu"
    assert load_script("gpu_check").main(["--out", str(out), "--device", "cpu", "--quick",
                                          "--budget", "300"]) == 0
    report = json.loads((out / "report.json").read_text())
    names = [s["name"] for s in report["steps"]]
    assert names == ["cuda tests", "imdb smoke", "pathfinder smoke", "imdb test timing",
                     "pathfinder test timing"]
    assert all(s["status"] == "ok" for s in report["steps"])
    timed = report["steps"][-1]
    assert timed["result_device"] == "cpu" and timed["seeds"] == [0] and timed["wall_seconds"] > 0
    assert all(len(t) == 1 and t[0] > 0 for t in timed["run_seconds"].values())
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "imdb.npz", "log.txt", "pathfinder.npz", "report.json", "summary.json"]
