"""SynthSent: the generator (labels recomputed independently, seeding, balance, bag of words
independent of the label, argument checks) and the ``synthsent`` experiment end to end."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from attnlab.data import synthsent, synthsent_decode, synthsent_vocab
from attnlab.experiments import (
    EXPERIMENTS,
    RUNNERS,
    bag_of_words_baselines,
    get_config,
    load_result,
)
from attnlab.experiments.run import main as cli_main

pytestmark = pytest.mark.usefixtures("one_thread")


def _label_by_hand(row, vocab) -> int:
    """The rule of the docstring, one token at a time: a sentiment word counts +1 (positive)
    or -1 (negative), flipped when the token just before it is the negator."""
    total = 0
    for p, t in enumerate(row):
        if t in vocab["positive"]:
            sign = 1
        elif t in vocab["negative"]:
            sign = -1
        else:
            continue
        if p > 0 and row[p - 1] == vocab["negator"]:
            sign = -sign
        total += sign
    return 1 if total > 0 else 0


@pytest.mark.parametrize("kw", [{}, {"k": 1, "length": 4}, {"k": 5, "length": 30, "n_words": 3},
                                {"decoys": False, "length": 6}])
def test_labels_shapes_and_vocabulary(kw):
    X, y = synthsent(300, seed=4, **kw)
    length, k = kw.get("length", 24), kw.get("k", 3)
    vocab = synthsent_vocab(n_words=kw.get("n_words", 8), n_filler=kw.get("n_filler", 16))
    assert X.shape == (300, length) and y.shape == (300,)
    assert X.dtype == np.int64 and y.dtype == np.int64
    assert X.min() >= 1 and X.max() < vocab["size"]  # no padding generated
    words = np.isin(X, list(vocab["positive"]) + list(vocab["negative"])).sum(1)
    assert (words == k).all()
    negators = (X == vocab["negator"]).sum(1)
    if kw.get("decoys", True):
        assert (negators == k).all()
    else:
        assert (negators <= k).all()
    assert [_label_by_hand(r, vocab) for r in X.tolist()] == y.tolist()


def test_vocabulary_layout():
    v = synthsent_vocab(n_words=3, n_filler=5)
    assert (v["pad"], v["negator"]) == (0, 1)
    assert list(v["filler"]) == [2, 3, 4, 5, 6]
    assert list(v["positive"]) == [7, 8, 9] and list(v["negative"]) == [10, 11, 12]
    assert v["size"] == 13


def test_seeded_and_balanced():
    a = synthsent(2000, seed=7)
    b = synthsent(2000, seed=7)
    c = synthsent(2000, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert abs(a[1].mean() - 0.5) < 0.05  # P(label = 1) = 1/2 by symmetry
    X = a[0]  # sentiment words appear at many positions, not at fixed slots
    vocab = synthsent_vocab()
    pos = np.nonzero(np.isin(X, list(vocab["positive"]) + list(vocab["negative"])))[1]
    assert len(set(pos.tolist())) >= 20


def test_bag_of_words_carries_no_label_information():
    """With decoys the label is independent of the token counts: the majority label of each
    count vector, fitted on one half, is at chance on the other. Without decoys the number
    of negators leaks the label."""
    def table_accuracy(X, y, vocab):
        counts = [tuple(np.bincount(r, minlength=vocab["size"])) for r in X]
        half = len(y) // 2
        votes = defaultdict(Counter)
        for c, lab in zip(counts[:half], y[:half].tolist(), strict=True):
            votes[c][lab] += 1
        pred = [votes[c].most_common(1)[0][0] if c in votes else 1 for c in counts[half:]]
        return float(np.mean(np.array(pred) == y[half:]))

    vocab = synthsent_vocab(n_words=1, n_filler=1)  # few count vectors: a sharp estimate
    X, y = synthsent(6000, 12, n_words=1, n_filler=1, seed=2)
    assert abs(table_accuracy(X, y, vocab) - 0.5) < 0.04
    X, y = synthsent(6000, 12, n_words=1, n_filler=1, decoys=False, seed=2)
    assert table_accuracy(X, y, vocab) > 0.7


@pytest.mark.parametrize("kw,name", [
    ({"n": 0}, "n"), ({"n": 2.5}, "n"), ({"k": 2}, "k"), ({"k": 0}, "k"),
    ({"length": 11}, "length"), ({"length": 5, "decoys": False}, "length"),
    ({"n_words": 0}, "n_words"), ({"n_filler": 0}, "n_filler"), ({"seed": -1}, "seed"),
    ({"decoys": 1}, "decoys"),
])
def test_bad_arguments_name_the_parameter(kw, name):
    args = {"n": 10, "length": 12, "k": 3} | kw
    with pytest.raises((ValueError, TypeError), match=rf"\b{name}\b"):
        synthsent(**args)


def test_config_validation():
    assert "synthsent" in EXPERIMENTS
    with pytest.raises(ValueError, match="k"):
        get_config("synthsent", "short", k=2)
    with pytest.raises(ValueError, match="length"):
        get_config("synthsent", "short", length=8)  # < 4 k
    cfg = get_config("synthsent", "short")
    assert len(cfg.seeds) >= 3 and cfg.kernels == ("softmax", "gaussian")


def test_test_config_learns_and_saves(tmp_path):
    res = RUNNERS["synthsent"](get_config("synthsent", "test"), device="cpu", progress=False,
                               out=tmp_path)
    for k in ("softmax", "gaussian"):
        assert float(res[f"{k}/train_acc"][:, -1].mean()) > 0.65
        tl = res[f"{k}/train_loss"][0]
        assert tl[-1] < tl[0]
    again = load_result(tmp_path / "synthsent.npz")
    assert again.experiment == "synthsent" and again.meta["config"]["k"] == 1
    np.testing.assert_array_equal(again["gaussian/test_acc"], res["gaussian/test_acc"])
    assert "SynthSent" in res.meta["note"]


def test_cli_accepts_synthsent(tmp_path):
    assert cli_main(["synthsent", "--config", "test", "--out", str(tmp_path), "--no-progress",
                     "--device", "cpu", "--seeds", "1"]) == 0
    res = load_result(tmp_path / "synthsent.npz")
    assert res.meta["seeds"] == [1]


def test_pos_std_scales_the_initial_positions():
    from dataclasses import replace

    from attnlab.experiments import ModelConfig, build_model

    cfg = ModelConfig(D=8, hidden=16, heads=2, head_dim=4, dropout=0.0)
    assert cfg.pos_std == 0.02  # the default every other experiment uses
    m = build_model(cfg, "softmax", vocab=10, n_tokens=6, classes=2, seed=3)
    with torch.random.fork_rng(devices=[]):  # the same draws as build_model's
        torch.manual_seed(3)
        torch.nn.Embedding(10, 8)
        expected = 0.02 * torch.randn(6, 8)
    torch.testing.assert_close(m.pos.detach(), expected)
    big = build_model(replace(cfg, pos_std=1.0), "softmax", vocab=10, n_tokens=6, classes=2,
                      seed=3)
    torch.testing.assert_close(big.pos.detach(), expected / 0.02)
    with pytest.raises(ValueError, match="pos_std"):
        ModelConfig(pos_std=-1.0)


def _table_reference(Xtr, ytr, Xte, V):
    """Majority label per count vector, overall majority for unseen ones (independent)."""
    key = lambda r: tuple(np.bincount(r, minlength=V))  # noqa: E731
    votes = defaultdict(Counter)
    for r, lab in zip(Xtr, ytr.tolist(), strict=True):
        votes[key(r)][lab] += 1
    overall = int(ytr.mean() > 0.5)
    out = []
    for r in Xte:
        c = votes.get(key(r))
        out.append(overall if c is None else int(c[1] > c[0]))
    return np.array(out)


def test_bag_of_words_baselines():
    vocab = synthsent_vocab(n_words=1, n_filler=1)
    V = vocab["size"]
    # counts leak the label without decoys: the table must equal the reference and beat chance
    X, y = synthsent(3000, 12, n_words=1, n_filler=1, decoys=False, seed=4)
    out = bag_of_words_baselines(X[:2000], y[:2000], X[2000:], y[2000:], V)
    ref = np.mean(_table_reference(X[:2000], y[:2000], X[2000:], V) == y[2000:])
    assert out["table"] == pytest.approx(ref) and out["table"] > 0.7
    # a label that is a linear function of counts: logistic regression finds it
    rng = np.random.default_rng(0)
    Xl = rng.integers(0, 5, size=(1200, 9))
    yl = ((Xl == 3).sum(1) > (Xl == 4).sum(1)).astype(np.int64)
    assert bag_of_words_baselines(Xl[:800], yl[:800], Xl[800:], yl[800:], 5)["logreg"] > 0.9
    # with decoys both sit at chance
    X, y = synthsent(4000, 12, n_words=1, n_filler=1, seed=5)
    out = bag_of_words_baselines(X[:2000], y[:2000], X[2000:], y[2000:], V)
    assert abs(out["logreg"] - 0.5) < 0.05 and abs(out["table"] - 0.5) < 0.05
    with pytest.raises(ValueError, match="vocab_size"):
        bag_of_words_baselines(X, y, X, y, V - 1)
    with pytest.raises(ValueError, match="X_test"):
        bag_of_words_baselines(X, y, X, y[:-1], V)


def test_synthsent_decode():
    X, y = synthsent(20, 12, n_words=2, n_filler=4, seed=1)
    text = synthsent_decode(X, n_words=2, n_filler=4)
    assert len(text) == 20 and all(len(t.split()) == 12 for t in text)
    vocab = synthsent_vocab(n_words=2, n_filler=4)
    for row, t in zip(X, text, strict=True):
        words = t.split()
        for tok, w in zip(row, words, strict=True):
            assert (w == "not") == (tok == vocab["negator"])
            assert (w in ("good", "great")) == (tok in vocab["positive"])
            assert (w in ("bad", "dull")) == (tok in vocab["negative"])
    big = synthsent_decode(synthsent(2, 24, seed=0)[0])  # default vocabulary: generic names
    assert all(w == "not" or w[0] in "w+-" for t in big for w in t.split())
    with pytest.raises(ValueError, match="outside the vocabulary"):
        synthsent_decode(np.array([[0, 99]]), n_words=2, n_filler=4)
