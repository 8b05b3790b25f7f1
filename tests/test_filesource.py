"""File point sources: .npy shard directories and Parquet datasets, local and on S3 (moto on loopback)."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from mc_hull.errors import InputError
from mc_hull.runs.filesource import open_source


def data(n=103, d=7, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) * rng.uniform(0.1, 10.0, d) + 3.0).astype(dtype)


def write_npy(directory, X, cuts):
    """Shards of X cut at ``cuts`` (names sort in row order; one hidden file that must be skipped)."""
    os.makedirs(directory, exist_ok=True)
    edges = [0, *cuts, len(X)]
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        np.save(os.path.join(directory, f"part-{i:03d}.npy"), X[a:b])
    np.save(os.path.join(directory, ".hidden.npy"), np.full((3, X.shape[1]), np.nan))
    return str(directory)


def write_parquet(directory, X, files=2, group=17, columns=False):
    os.makedirs(directory, exist_ok=True)
    edges = np.linspace(0, len(X), files + 1).astype(int)
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        part = X[a:b]
        if columns:
            table = pa.table({f"x{j}": part[:, j] for j in range(X.shape[1])})
        else:
            table = pa.table({"embedding": pa.FixedSizeListArray.from_arrays(pa.array(part.ravel()), X.shape[1])})
        pq.write_table(table, os.path.join(directory, f"part-{i}.parquet"), row_group_size=group)
    return str(directory)


def blocks(src, order=None):
    ids = list(range(src.n_blocks)) if order is None else order
    out = {start: rows for start, rows in src.generate(ids)}
    return np.concatenate([out[k] for k in sorted(out)])


@pytest.mark.parametrize("block_elems", [7 * 5, 7 * 16, 7 * 1000])
@pytest.mark.parametrize("layout", ["npy", "parquet-list", "parquet-columns"])
def test_blocks_are_the_rows_in_file_order_whatever_the_block_size(tmp_path, layout, block_elems):
    X = data()
    if layout == "npy":
        path = write_npy(tmp_path / "X", X, [10, 10, 40, 99])     # an empty shard too
    else:
        path = write_parquet(tmp_path / "X", X, files=3, group=13, columns=layout.endswith("columns"))
    src = open_source(path, block_elems=block_elems)
    assert (src.n, src.d, src.dtype) == (103, 7, np.float32)
    assert src.block_rows == max(1, block_elems // 7)
    every = blocks(src)
    assert every.dtype == np.float32 and np.array_equal(every, X)
    # blocks in any order and again (regenerated, not consumed), rows by index
    rev = blocks(src, list(reversed(range(src.n_blocks))))
    assert np.array_equal(rev, X)
    idx = np.array([102, 0, 57, 57, 13])
    assert np.array_equal(src.take(idx), X[idx])
    assert np.array_equal(src.load(), X)
    # the contract: every block but the last holds block_rows rows
    sizes = [len(r) for _, r in src.generate(range(src.n_blocks))]
    assert all(s == src.block_rows for s in sizes[:-1]) and sum(sizes) == 103


def test_dtypes_float32_stays_float32_others_become_float64(tmp_path):
    X = data(40, 3)
    for name, arr, want in [("f16", X.astype(np.float16), np.float32), ("f64", X.astype(np.float64), np.float64),
                            ("i32", (X * 10).astype(np.int32), np.float64)]:
        path = write_npy(tmp_path / name, arr, [20])
        src = open_source(path)
        assert src.dtype == want
        assert np.array_equal(src.load(), arr.astype(want))
    mixed = tmp_path / "mixed"
    write_npy(mixed, X, [20])
    np.save(mixed / "part-001.npy", X[20:].astype(np.float64))
    src = open_source(str(mixed))
    assert src.dtype == np.float64 and np.array_equal(src.load(), X.astype(np.float64))


def test_digest_streams_file_bytes_and_changes_with_one_value(tmp_path):
    X = data()
    a = open_source(write_npy(tmp_path / "a", X, [50]))
    b = open_source(write_npy(tmp_path / "b", X, [50]), block_elems=7)
    assert a.digest == b.digest and len(a.digest) == 64    # same files, any block size, any place
    c = open_source(write_npy(tmp_path / "c", X, [51]))
    assert c.digest != a.digest                              # other shard boundaries: other files
    Y = X.copy()
    Y[77, 3] = np.nextafter(Y[77, 3], np.float32(np.inf))
    assert open_source(write_npy(tmp_path / "d", Y, [50])).digest != a.digest
    p = open_source(write_parquet(tmp_path / "p", X))
    assert p.digest != a.digest and p.digest == open_source(str(tmp_path / "p")).digest


def bad_input(tmp_path, case):
    X = data(30, 4)
    d = tmp_path / case
    os.makedirs(d)
    if case == "ragged":
        np.save(d / "a.npy", X)
        np.save(d / "b.npy", np.zeros((5, 5), np.float32))
    elif case == "nan":
        Y = X.copy()
        Y[17, 2] = np.nan
        np.save(d / "a.npy", X)
        np.save(d / "b.npy", Y)
    elif case == "inf-parquet":
        Y = X.copy()
        Y[29, 0] = -np.inf
        write_parquet(d, Y, files=1, group=7)
    elif case == "empty-dir":
        (d / "readme.txt").write_text("nothing here")
    elif case == "no-rows":
        np.save(d / "a.npy", np.zeros((0, 4)))
    elif case == "complex":
        np.save(d / "a.npy", X.astype(np.complex64))
    elif case == "strings":
        pq.write_table(pa.table({"x": [1.0, 2.0], "name": ["a", "b"]}), d / "a.parquet")
    elif case == "3d":
        np.save(d / "a.npy", np.zeros((3, 2, 2)))
    elif case == "fortran":
        np.save(d / "a.npy", np.asfortranarray(X))
    elif case == "truncated":
        np.save(d / "a.npy", X)
        raw = (d / "a.npy").read_bytes()
        (d / "a.npy").write_bytes(raw[:-20])
    elif case == "not-npy":
        (d / "a.npy").write_text("hello\n")
    elif case == "mixed":
        np.save(d / "a.npy", X)
        write_parquet(d, X, files=1)
    elif case == "ragged-list":
        col = pa.array([[1.0, 2.0], [3.0, 4.0], [5.0]], type=pa.list_(pa.float64()))
        pq.write_table(pa.table({"v": col}), d / "a.parquet")
    elif case == "nulls":
        pq.write_table(pa.table({"x": [1.0, None], "y": [1.0, 2.0]}), d / "a.parquet")
    elif case == "schemas":
        pq.write_table(pa.table({"x": [1.0], "y": [2.0]}), d / "a.parquet")
        pq.write_table(pa.table({"x": [1.0], "z": [2.0]}), d / "b.parquet")
    return str(d)


@pytest.mark.parametrize("case, needle", [
    ("ragged", "ragged d: b.npy has d = 5, a.npy has d = 4"),
    ("nan", "b.npy row 17 (row 47 of the set) contains NaN or inf"),
    ("inf-parquet", "part-0.parquet row 29 (row 29 of the set) contains NaN or inf"),
    ("empty-dir", "holds no .npy or .parquet files"),
    ("no-rows", "holds no rows"),
    ("complex", "a.npy holds complex values"),
    ("strings", "column 'name' of a.parquet is not numeric (string)"),
    ("3d", "a.npy has shape (3, 2, 2); each shard must be 2-D"),
    ("fortran", "a.npy is stored in Fortran order"),
    ("truncated", "a.npy is truncated"),
    ("not-npy", "a.npy is not a .npy array"),
    ("mixed", "mixes .npy and Parquet files"),
    ("ragged-list", "rows have ragged d (1 values in row 2, expected 2)"),
    ("nulls", "column 'x' has missing values"),
    ("schemas", "b.parquet has schema (x: double, z: double), a.parquet has (x: double, y: double)"),
])
def test_bad_datasets_are_refused_in_one_line(tmp_path, case, needle):
    with pytest.raises(InputError) as err:
        open_source(bad_input(tmp_path, case), "--train")
    msg = str(err.value)
    assert needle in msg and msg.startswith("--train: ") and "\n" not in msg


def test_missing_path_and_a_row_changed_under_a_run(tmp_path):
    with pytest.raises(InputError, match="--test: no such file or directory: .*nowhere"):
        open_source(str(tmp_path / "nowhere"), "--test")
    X = data(50, 4)
    path = write_npy(tmp_path / "x", X, [25])
    src = open_source(path, block_elems=4 * 10)
    Y = X[25:].copy()
    Y[3, 1] = np.inf
    np.save(os.path.join(path, "part-001.npy"), Y)           # same size: the header and map still fit
    assert np.array_equal(blocks_upto(src, 2), X[:20])        # blocks before it still read
    with pytest.raises(InputError, match="part-001.npy row 3 \\(row 28 of the set\\) contains NaN or inf"):
        list(src.generate([2]))


def blocks_upto(src, k):
    return np.concatenate([r for _, r in src.generate(range(k))])


def test_a_source_survives_pickling_for_a_map(tmp_path):
    import pickle

    X = data()
    src = open_source(write_npy(tmp_path / "x", X, [50]), block_elems=70)
    list(src.generate([0, 6]))                                  # a file mapped in its cache
    again = pickle.loads(pickle.dumps(src))
    assert np.array_equal(blocks(again), X) and again.digest == src.digest


# -- S3 on loopback --------------------------------------------------------------------------
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 with a bucket; yields (endpoint, filesystem)."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in CREDS}
    os.environ.update(CREDS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1",
                           allow_bucket_creation=True, allow_delayed_open=True)   # one PUT per small file
    fs.create_dir("shards")
    yield endpoint, fs
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def s3_uri(endpoint, prefix):
    return f"s3://shards/{prefix}?endpoint_override={endpoint}&scheme=http&region=us-east-1"


def upload(fs, local, prefix):
    for name in sorted(n for n in os.listdir(local) if not n.startswith(".")):
        with open(os.path.join(local, name), "rb") as fh, fs.open_output_stream(f"shards/{prefix}/{name}") as out:
            out.write(fh.read())


@pytest.mark.parametrize("layout", ["npy", "parquet"])
def test_s3_dataset_reads_the_same_rows_and_digest_as_local(s3, tmp_path, layout):
    endpoint, fs = s3
    X = data(211, 9, seed=4)
    local = write_npy(tmp_path / "l", X, [70, 150]) if layout == "npy" else write_parquet(tmp_path / "l", X, 3, 31)
    upload(fs, local, layout)
    remote = open_source(s3_uri(endpoint, layout), block_elems=9 * 40)
    here = open_source(local, block_elems=9 * 40)
    assert (remote.n, remote.d, remote.dtype) == (211, 9, np.float32)
    assert remote.digest == here.digest
    assert np.array_equal(blocks(remote), X)
    assert np.array_equal(remote.take([210, 3, 100]), X[[210, 3, 100]])


def test_s3_bad_shard_and_missing_prefix(s3, tmp_path):
    endpoint, fs = s3
    path = bad_input(tmp_path, "nan")
    upload(fs, path, "bad")
    with pytest.raises(InputError, match="b.npy row 17 \\(row 47 of the set\\) contains NaN or inf"):
        open_source(s3_uri(endpoint, "bad"))
    with pytest.raises(InputError, match="no such file or directory"):
        open_source(s3_uri(endpoint, "nothing-here"))


@pytest.mark.parametrize("budget", ["4G", "1K"])
def test_cli_hull_test_reads_training_shards_from_s3(s3, tmp_path, capsys, monkeypatch, budget):
    """``--train s3://...``: the same rows as the local shards, held (loaded once) or streamed (ranged reads)."""
    from mc_hull.cli import main
    from mc_hull.store import HullTestStore

    endpoint, fs = s3
    X = data(120, 5, seed=8)
    local = write_npy(tmp_path / "l", X, [50])
    upload(fs, local, f"cli-{budget}")
    np.save(tmp_path / "q.npy", np.vstack([X[:4], data(20, 5, seed=9) * 1.1]))
    monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", budget)
    tables = []
    for train in (s3_uri(endpoint, f"cli-{budget}"), local):
        out = tmp_path / ("s3" if "://" in train else "here")
        assert main(["hull-test", "--train", train, "--test", str(tmp_path / "q.npy"), "--out", str(out),
                     "--serial"]) == 0, capsys.readouterr().err
        store = HullTestStore(str(out))
        (test_id,) = store.records()
        tables.append(store.points(test_id))
        assert store.records()[test_id].get("placement") == (None if budget == "4G" else "streamed")
    assert tables[0].equals(tables[1]) and tables[0].num_rows == 24
