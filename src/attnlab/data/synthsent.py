"""SynthSent: a synthetic "negation sentiment" task that needs attention and position.

Our own task (``shared/notes/data.md`` §2.3), not one of the papers'. Each sequence holds
``k`` (odd) sentiment words at random positions. Each one is negated with probability 1/2,
by a negator placed just before it, which flips its sign. The label is the sign of the sum
of the (flipped) signs: 1 if positive, 0 if negative. ``k`` is odd, so there are no ties.

Vocabulary (``synthsent_vocab``; ``V = 2 + n_filler + 2 n_words`` ids)::

    0                                   padding (reserved, never generated)
    1                                   the negator ("not")
    2 .. 1 + n_filler                   neutral filler words
    2 + n_filler .. 1 + n_filler + W    positive words (W = n_words)
    2 + n_filler + W .. V - 1           negative words

A sentiment word at position ``p`` is negated exactly when ``tokens[p - 1]`` is the
negator. With ``decoys=True`` (the default, our choice) every sequence holds exactly ``k``
negators: the ones not used for negation are placed before filler words, where they change
nothing. The bag of words (the multiset of tokens) is then independent of the label, so
no bag-of-words classifier beats chance. Only the word right *before* each sentiment word
decides its sign, and a model needs the order of the tokens to read it. With
``decoys=False`` the number of negators leaks some information about the label.

How a sequence is laid out: it is cut into units. There is one two-token unit
``(negator or filler, word)`` per sentiment word, one two-token unit ``(negator, filler)``
per decoy, and single filler tokens for the rest. The units are shuffled uniformly. Filler
and sentiment word ids are drawn uniformly from their ranges.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validate import check_float_array, check_int, check_size

__all__ = ["synthsent", "synthsent_decode", "synthsent_vocab", "check_synthsent_sizes"]

PAD, NEGATOR = 0, 1


_MAX_VOCAB = 100_000  # word ids of one kind; more is a typo (the vocabulary is listed)


def check_synthsent_sizes(k: int, length: int, *, decoys: bool = True,
                          length_name: str = "length") -> tuple[int, int]:
    """Validate ``k`` (odd, >= 1) and the sequence length (>= ``4 k`` with decoys, else
    ``2 k``, so every unit fits); returns them as ints. ``length_name`` names the length
    in the error (a config may call it ``n``)."""
    k = check_int("k", k, min=1, max=_MAX_VOCAB)
    if k % 2 == 0:
        raise ValueError(f"k must be odd (so the signed sum is never 0), got {k}")
    return k, check_int(length_name, length, min=4 * k if decoys else 2 * k)


def synthsent_vocab(*, n_words: int = 8, n_filler: int = 16) -> dict[str, object]:
    """Token ids of SynthSent: ``{"pad": 0, "negator": 1, "filler": range, "positive":
    range, "negative": range, "size": V}`` with ``V = 2 + n_filler + 2 n_words``."""
    W = check_int("n_words", n_words, min=1, max=_MAX_VOCAB)
    F = check_int("n_filler", n_filler, min=1, max=_MAX_VOCAB)
    return {"pad": PAD, "negator": NEGATOR, "filler": range(2, 2 + F),
            "positive": range(2 + F, 2 + F + W), "negative": range(2 + F + W, 2 + F + 2 * W),
            "size": 2 + F + 2 * W}


def synthsent_decode(tokens, *, n_words: int = 8, n_filler: int = 16) -> list[str]:
    """Readable text of SynthSent sequences ``tokens (N, L)``: one string per sequence.

    The negator reads "not", padding "<pad>"; with few word ids the words get English
    stand-ins ("the film was and", "good great", "bad dull"), otherwise generic names
    ``w3`` (filler), ``+1`` (positive), ``-0`` (negative).
    """
    vocab = synthsent_vocab(n_words=n_words, n_filler=n_filler)
    tokens = check_float_array("tokens", np.asarray(tokens) if isinstance(tokens, list)
                               else tokens, ndim=(1, 2), allow_int=True)
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.cpu().numpy()
    if np.asarray(tokens).dtype.kind not in "iu":
        raise TypeError(f"tokens must hold integer ids, got dtype {np.asarray(tokens).dtype}")
    names = {PAD: "<pad>", NEGATOR: "not"}
    for group, tag, words in (("filler", "w", ["the", "film", "was", "and"]),
                              ("positive", "+", ["good", "great"]),
                              ("negative", "-", ["bad", "dull"])):
        ids = vocab[group]
        for i, t in enumerate(ids):
            names[t] = words[i] if len(ids) <= len(words) else f"{tag}{i}"
    X = np.atleast_2d(np.asarray(tokens))
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.integer):
        raise ValueError(f"tokens must be an integer array (N, L), got {X.dtype} {X.shape}")
    bad = set(np.unique(X).tolist()) - set(names)
    if bad:
        raise ValueError(f"tokens: ids {sorted(bad)[:5]} are outside the vocabulary of size "
                         f"{vocab['size']}")
    return [" ".join(names[t] for t in row) for row in X.tolist()]


def synthsent(n: int, length: int = 24, *, k: int = 3, n_words: int = 8, n_filler: int = 16,
              decoys: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` seeded SynthSent sequences and their labels.

    Args:
        n: number of sequences.
        length: tokens per sequence. It must be at least ``4 k`` with decoys and ``2 k``
            without, so that every unit fits.
        k: sentiment words per sequence (odd, >= 1).
        n_words: positive words and negative words (``n_words`` ids each).
        n_filler: neutral filler ids.
        decoys: give every sequence exactly ``k`` negators (see the module docstring).
        seed: seed of the NumPy generator. The same arguments give the same data.

    Returns:
        ``tokens (n, length)`` int64 with ids as in :func:`synthsent_vocab`, and
        ``labels (n,)`` int64: 1 if the signed sum of the sentiment words is positive,
        else 0.
    """
    n = check_int("n", n, min=1)
    if not isinstance(decoys, (bool, np.bool_)):
        raise TypeError(f"decoys must be a bool, got {type(decoys).__name__} {decoys!r}")
    k, length = check_synthsent_sizes(k, length, decoys=bool(decoys))
    check_size("n * length", n, length, limit=10**9)
    vocab = synthsent_vocab(n_words=n_words, n_filler=n_filler)
    seed = check_int("seed", seed, min=0)
    rng = np.random.default_rng(seed)
    F, W = len(vocab["filler"]), len(vocab["positive"])
    f0, p0, m0 = vocab["filler"].start, vocab["positive"].start, vocab["negative"].start

    tokens = np.empty((n, length), np.int64)
    labels = np.empty(n, np.int64)
    for i in range(n):
        positive = rng.random(k) < 0.5
        negated = rng.random(k) < 0.5
        words = np.where(positive, p0, m0) + rng.integers(0, W, k)
        n_decoys = k - int(negated.sum()) if decoys else 0
        n_single = length - 2 * k - 2 * n_decoys
        # unit codes: 0..k-1 sentiment unit j, k = decoy unit, k + 1 = single filler
        units = np.concatenate([np.arange(k), np.full(n_decoys, k), np.full(n_single, k + 1)])
        rng.shuffle(units)
        fill = f0 + rng.integers(0, F, length)
        row, pos = tokens[i], 0
        for u in units:
            if u < k:
                row[pos] = NEGATOR if negated[u] else fill[pos]
                row[pos + 1] = words[u]
                pos += 2
            elif u == k:
                row[pos], row[pos + 1] = NEGATOR, fill[pos + 1]
                pos += 2
            else:
                row[pos] = fill[pos]
                pos += 1
        signed = np.where(positive, 1, -1) * np.where(negated, -1, 1)
        labels[i] = int(signed.sum() > 0)
    return tokens, labels
