"""Part III input checks (issue 12): every run_* refuses bad arguments before any data is
made or any model trained; frozen features are deterministic; config sizes are bounded."""

from __future__ import annotations

import pytest
import torch

import attnlab.experiments.convex_tasks as ct
import attnlab.experiments.real_tasks as rt
from attnlab.experiments import RUNNERS, ModelConfig, build_model, frozen_features, get_config

# the first costly step of each run (data preparation or pretraining)
FIRST_WORK = {"imdb": [(rt, "imdb_data")], "synthsent": [(rt, "synthsent_data")],
              "pathfinder": [(rt, "pathfinder_data")],
              "landscape": [(rt, "imdb_data"), (rt, "pathfinder_data")],
              "modular": [(ct, "modular_division")],
              "student_teacher": [(ct, "pretrained_classifier"), (ct, "_pretrain"),
                                  (ct, "frozen_features")]}


@pytest.fixture
def no_work(monkeypatch):
    def block(name):
        def fail(*a, **k):
            raise AssertionError(f"{name}: work started before the arguments were checked")
        for mod, attr in FIRST_WORK[name]:
            monkeypatch.setattr(mod, attr, fail)
    return block


@pytest.mark.parametrize("name", sorted(RUNNERS))
@pytest.mark.parametrize("kw,err,match", [
    (dict(out=""), ValueError, "out must not be empty"),
    (dict(out="/"), ValueError, "filesystem root"),
    (dict(device="tpu"), ValueError, "device must be one of"),
    (dict(seeds=[-1]), ValueError, "seeds must be >= 0"),
    (dict(seeds=[0.5]), TypeError, "seeds must be an integer"),
    (dict(progress="no"), TypeError, "progress must be True or False"),
])
def test_every_run_checks_its_arguments_before_any_work(name, kw, err, match, no_work):
    no_work(name)
    cfg = get_config(name, "test")
    with pytest.raises(err, match=match):
        RUNNERS[name](cfg, **({"progress": False} | kw))


@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_a_run_refuses_another_experiments_config(name, no_work):
    no_work(name)
    other = get_config("modular" if name != "modular" else "imdb", "test")
    with pytest.raises(TypeError, match="config must be a"):
        RUNNERS[name](other, progress=False)


def test_frozen_features_refuses_seed_none_and_is_deterministic():
    cfg = get_config("student_teacher", "test", features="random")
    with pytest.raises(TypeError, match="seed must be an integer"):
        frozen_features(cfg, 4, None)  # used to draw fresh random tokens on every call
    a = frozen_features(cfg, 6, 3, N_test=2)
    b = frozen_features(cfg, 6, 3, N_test=2)
    assert torch.equal(a, b) and not torch.equal(a, frozen_features(cfg, 6, 4, N_test=2))
    model = build_model(ModelConfig(D=8, hidden=8, heads=1, head_dim=4, layers=1), "softmax",
                        vocab=8, n_tokens=cfg.n, classes=2, seed=0)
    with pytest.raises(ValueError, match="model must be None"):
        frozen_features(cfg, 4, 0, model=model)


@pytest.mark.parametrize("experiment,field,value,err", [
    ("imdb", "epochs", 10**9, ValueError),
    ("imdb", "seeds", (0, 1.5), TypeError),
    ("imdb", "model", "small", TypeError),
    ("pathfinder", "n_train", 10**12, ValueError),
    ("synthsent", "length", 10**10, ValueError),
    ("modular", "depths", (), ValueError),
    ("student_teacher", "teacher_scale", 0.0, ValueError),
    ("landscape", "seeds", (-1,), ValueError),
])
def test_config_fields_are_checked_with_bounds(experiment, field, value, err):
    with pytest.raises(err, match=field):
        get_config(experiment, "test", **{field: value})


def test_checkpointed_blocks_give_the_same_gradients(monkeypatch):
    """Long training batches recompute each block in the backward pass (memory of the full
    presets): the loss and the gradients are bit-identical to the plain pass, dropout
    included."""
    import attnlab.experiments.models as models

    cfg = ModelConfig(D=8, hidden=16, heads=2, head_dim=4, layers=2, dropout=0.1)
    X = torch.randint(0, 10, (4, 6))
    X[0, 4:] = 0  # padding: the key mask is used too
    y = torch.tensor([0, 1, 1, 0])

    def grads(threshold):
        monkeypatch.setattr(models, "CHECKPOINT_ELEMENTS", threshold)
        model = build_model(cfg, "softmax", vocab=10, n_tokens=6, classes=2, seed=0,
                            pad_mask=True)
        torch.manual_seed(0)  # the dropout masks
        loss = torch.nn.functional.cross_entropy(model(X), y)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    plain, checkpointed = grads(2**40), grads(0)
    assert torch.equal(plain[0], checkpointed[0])
    assert all(torch.equal(a, b) for a, b in zip(plain[1], checkpointed[1], strict=True))
