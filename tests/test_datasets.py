"""mc_hull.runs.datasets: loading every array format, validation, the digits split and the reductions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from mc_hull.runs import datasets as dsets
from mc_hull.runs.datasets import ArrayData, Reduction, fit, load_array, parse_reduce, reduce_pair
from mc_hull.errors import InputError


def test_loads_npy_npz_parquet_arrow_and_feather(tmp_path):
    x = np.arange(12.0).reshape(4, 3)
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "one.npz", x)
    np.savez(tmp_path / "two.npz", train=x, test=x[:2] + 0.5)
    table = pa.table({"a": x[:, 0], "b": x[:, 1].astype(np.int32), "c": x[:, 2], "label": list("wxyz")})
    pq.write_table(table, tmp_path / "t.parquet")
    feather.write_feather(table.drop_columns(["label"]), tmp_path / "t.feather")
    pq.write_table(pa.table({"emb": pa.array(x.tolist(), type=pa.list_(pa.float32()))}), tmp_path / "l.parquet")
    for text in ("a.npy", "one.npz", "two.npz:train", "t.parquet:a,b,c", "t.feather", "l.parquet"):
        got = load_array(str(tmp_path / text))
        assert got.values.dtype == np.float64 and got.image_shape is None, text
        np.testing.assert_array_equal(got.values, x, err_msg=text)
        assert len(got.file_sha256) == 64
    np.testing.assert_array_equal(load_array(str(tmp_path / "two.npz:test")).values, x[:2] + 0.5)
    with pytest.raises(InputError, match="holds 2 arrays.*train, test"):
        load_array(str(tmp_path / "two.npz"))
    with pytest.raises(InputError, match="column 'label' is not numeric"):
        load_array(str(tmp_path / "t.parquet"))


def test_images_keep_their_shape_and_content_hash_tracks_values(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 255, size=(5, 4, 6, 3)).astype(np.uint8)
    np.save(tmp_path / "im.npy", imgs)
    got = load_array(str(tmp_path / "im.npy"))
    assert got.values.shape == (5, 72) and got.image_shape == (4, 6, 3)
    same = ArrayData(got.values.copy(), None, "x")
    assert same.content_sha256 == got.content_sha256
    assert ArrayData(got.values + 1, None, "x").content_sha256 != got.content_sha256


@pytest.mark.parametrize("arr, needle", [
    (np.array([[1.0, np.nan], [0, 1]]), "NaN or inf"),
    (np.array([[1.0, 2.0], [np.inf, 1]]), "row 1"),
    (np.zeros((0, 3)), "empty"),
    (np.zeros((3, 0)), "empty"),
    (np.arange(3.0), "expected shape"),
    (np.array([["a", "b"]]), "not a numeric array"),
    (np.ones((2, 2), dtype=complex), "complex values .* are refused, not truncated"),
])
def test_as_samples_rejects_bad_arrays(arr, needle):
    with pytest.raises(InputError, match=needle):
        dsets.as_samples(arr, "--train")


def test_parse_reduce():
    assert parse_reduce("none") == Reduction("none")
    assert parse_reduce("PCA:8") == Reduction("pca", 8) and parse_reduce("pca:8").label == "pca:8"
    assert parse_reduce("random-projection:3").kind == "random-projection"
    for bad, needle in [("svd:3", "valid: none, pca:K, crop:K"), ("pca", "integer K"), ("pca:x", "integer"),
                        ("crop:0", ">= 1"), ("none:3", "no K")]:
        with pytest.raises(InputError, match=needle):
            parse_reduce(bad)


def _image(n=3, h=8, w=8, c=None, seed=0):
    shape = (n, h, w) if c is None else (n, h, w, c)
    arr = np.random.default_rng(seed).normal(size=shape)
    return ArrayData(arr.reshape(n, -1), shape[1:], "img"), arr


def test_crop_and_subsample_pick_centred_windows_and_strided_grids():
    data, arr = _image()
    crop = fit(Reduction("crop", 4), data).apply(data.values)
    np.testing.assert_array_equal(crop, arr[:, 3:5, 3:5].reshape(3, -1))
    sub = fit(Reduction("subsample", 16), data).apply(data.values)
    np.testing.assert_array_equal(sub, arr[:, 1::2, 1::2].reshape(3, -1))
    assert fit(Reduction("crop", 64), data).apply(data.values).tolist() == data.values.tolist()
    rgb, arr3 = _image(c=3, h=6, w=10)
    np.testing.assert_array_equal(fit(Reduction("crop", 9), rgb).apply(rgb.values),
                                  arr3[:, 1:4, 3:6, :].reshape(3, -1))
    flat = ArrayData(data.values, None, "flat")  # d = 64 = 8 * 8: a square grey image
    np.testing.assert_array_equal(fit(Reduction("crop", 4), flat).apply(flat.values), crop)
    with pytest.raises(InputError, match="K must be a square k\\*k with k <= 8"):
        fit(Reduction("crop", 5), data)
    with pytest.raises(InputError, match="one of 1, 4, 9"):
        fit(Reduction("subsample", 81), data)
    with pytest.raises(InputError, match="not a square"):
        fit(Reduction("crop", 4), ArrayData(np.zeros((2, 50)), None, "x"))


def test_pca_is_fitted_on_train_only_and_handles_rank_deficient_data():
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(2, 5))
    train = ArrayData(rng.normal(size=(30, 2)) @ basis + 3.0, None, "train")  # rank 2 in R^5
    test_a = ArrayData(rng.normal(size=(7, 5)), None, "a")
    test_b = ArrayData(rng.normal(size=(7, 5)) * 100, None, "b")
    tr_a, te_a = reduce_pair(Reduction("pca", 4), train, test_a)
    tr_b, _ = reduce_pair(Reduction("pca", 4), train, test_b)
    assert tr_a.shape == (30, 4) and te_a.shape == (7, 4)
    np.testing.assert_array_equal(tr_a, tr_b)  # the test set does not move the fit
    fitted = fit(Reduction("pca", 4), train)
    np.testing.assert_allclose(fitted.mean, train.values.mean(axis=0))
    np.testing.assert_allclose(fitted.matrix.T @ fitted.matrix, np.eye(4), atol=1e-12)
    assert np.abs(tr_a[:, 2:]).max() < 1e-9  # beyond the rank the training set has no variance
    np.testing.assert_allclose(tr_a.mean(axis=0), 0, atol=1e-9)
    with pytest.raises(InputError, match="min\\(n_train, d\\) = 5"):
        fit(Reduction("pca", 6), train)


def test_random_projection_is_seeded():
    data = ArrayData(np.random.default_rng(2).normal(size=(10, 20)), None, "x")
    a = fit(Reduction("random-projection", 5), data, seed=3).apply(data.values)
    b = fit(Reduction("random-projection", 5), data, seed=3).apply(data.values)
    c = fit(Reduction("random-projection", 5), data, seed=4).apply(data.values)
    assert a.shape == (10, 5) and np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(InputError, match="between 1 and d = 20"):
        fit(Reduction("random-projection", 21), data)


def test_digits_split_is_fixed_by_the_seed():
    train, test = dsets.digits_split(0)
    assert train.values.shape == (1438, 64) and test.values.shape == (359, 64)
    assert train.image_shape == (8, 8) and train.values.max() == 16
    again, _ = dsets.digits_split(0)
    other, _ = dsets.digits_split(1)
    assert again.content_sha256 == train.content_sha256 != other.content_sha256
