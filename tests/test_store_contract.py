"""One contract, every backend: in-memory (the reference), Parquet on a local directory, Parquet on S3 (moto on loopback)."""

from __future__ import annotations

import os
import threading
import uuid

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from mc_hull.errors import StoreError
from mc_hull.store import POINT_SCHEMA, SCHEMA, Entry, MemoryStore, ParquetStore, RunConflict, Store
from mc_hull.store.base import sha256

CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
RUN_A, RUN_B = "aaaaaaaaaaaa", "bbbbbbbbbbbb"


@pytest.fixture(scope="module")
def moto():
    """A moto S3 server on 127.0.0.1 (ephemeral port) with an empty bucket; yields its endpoint."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in CREDS}
    os.environ.update(CREDS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1",
                      allow_bucket_creation=True).create_dir("contract")
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class Raw:
    """Direct access to what a backend stores, to damage it the way a user or a fault would."""

    def __init__(self, store: Store):
        self.store = store

    def get(self, location: str) -> bytes:
        if isinstance(self.store, MemoryStore):
            return self.store.blobs[location]
        with self.store.fs.open_input_stream(self.store.where(location)) as fh:
            return fh.read()

    def put(self, location: str, body: bytes) -> None:
        if isinstance(self.store, MemoryStore):
            self.store.blobs[location] = body
            return
        with self.store.fs.open_output_stream(self.store.where(location)) as fh:
            fh.write(body)

    def delete(self, location: str) -> None:
        if isinstance(self.store, MemoryStore):
            del self.store.blobs[location]
        else:
            self.store.fs.delete_file(self.store.where(location))

    def put_entry(self, kind: str, run_id: str, key: str, body: bytes) -> None:
        if isinstance(self.store, MemoryStore):
            self.store.entries_raw[(kind, run_id, key)] = body
        else:
            self.store._write(self.store._entry_path(kind, run_id, key), body)

    def forget_runs(self) -> None:
        """Delete every run record and claim (what `rm -r _runs _claims` does)."""
        if isinstance(self.store, MemoryStore):
            self.store.documents = {k: v for k, v in self.store.documents.items() if k[0] != "runs"}
            self.store.slots.clear()
            return
        for rel in ("_runs", "_claims"):
            try:
                self.store.fs.delete_dir(self.store.where(rel))
            except (FileNotFoundError, OSError):
                pass


@pytest.fixture(params=["memory", "local", "s3"])
def make(request, tmp_path):
    """A factory of fresh, empty stores of one backend."""
    def factory() -> Store:
        if request.param == "memory":
            return MemoryStore()
        if request.param == "local":
            return ParquetStore(str(tmp_path / uuid.uuid4().hex[:8]))
        endpoint = request.getfixturevalue("moto")
        return ParquetStore(f"s3://contract/{uuid.uuid4().hex[:8]}?endpoint_override={endpoint}"
                            "&scheme=http&region=us-east-1")
    return factory


def trials(n: int, run_id: str = RUN_A, offset: int = 0) -> pa.Table:
    return pa.table({"run_id": [run_id] * n, "replicate": pa.array([0] * n, pa.int32()),
                     "query": pa.array(range(offset, offset + n), pa.int32()),
                     "inside": [i % 3 == 0 for i in range(n)], "status": ["inside"] * n, "method": ["lp"] * n,
                     "certificate_value": [1e-12] * n, "solve_seconds": [1e-4] * n,
                     "rounds": pa.array([1] * n, pa.int32())}, schema=SCHEMA)


PART = {"distribution": "gaussian", "d": 3, "n": 20}
KEY = "gaussian/d=3/n=20/r0000000-0000001"


def published(make, rows: int = 6):
    store = make()
    store.prepare()
    assert store.claim_run(RUN_A, {"spec": {"seed": 1}}, exclusive=True)
    entry = store.publish("trials", RUN_A, KEY, trials(rows), partition=PART)
    return store, entry


# -- publishing and reading ---------------------------------------------------------------
def test_published_rows_read_back_with_their_partition(make):
    store, entry = published(make)
    assert (entry.rows, entry.key, entry.run_id) == (6, KEY, RUN_A) and len(entry.sha256) == 64
    assert store.entries("trials") == [entry]
    table = store.read("trials")
    assert table.num_rows == 6 and table.column("d").to_pylist() == [3] * 6
    assert table.schema.field("n").type == pa.int64() and table.column("query").to_pylist() == list(range(6))
    assert store.committed("trials", RUN_A, {KEY: 6}) == ({KEY}, [])


def test_republishing_a_unit_replaces_it(make):
    store, _ = published(make)
    store.publish("trials", RUN_A, KEY, trials(6, offset=100), partition=PART)
    assert len(store.entries("trials")) == 1
    assert store.read("trials").column("query").to_pylist() == list(range(100, 106))


def test_bytes_without_an_entry_are_never_read(make):
    store, entry = published(make)
    raw = Raw(store)
    stray = entry.location.replace("r0000000", "r0000009")  # a copy under another name
    raw.put(stray, raw.get(entry.location))
    assert store.read("trials").num_rows == 6
    assert store.committed("trials", RUN_A, {KEY: 6})[0] == {KEY}


def test_a_unit_whose_rows_do_not_match_the_schema_is_refused(make):
    store = make()
    bad = trials(3).cast(pa.schema([f if f.name != "inside" else pa.field("inside", pa.int64()) for f in SCHEMA]))
    with pytest.raises(StoreError, match="schema"):
        store.publish("trials", RUN_A, KEY, bad, partition=PART)
    with pytest.raises(StoreError, match="partition"):
        store.publish("trials", RUN_A, KEY, trials(3), partition={"d": 3})
    with pytest.raises(StoreError, match="unit key"):
        store.publish("trials", RUN_A, "../escape", trials(3), partition=PART)
    with pytest.raises(StoreError, match="run id"):
        store.publish("trials", "not-hex", KEY, trials(3), partition=PART)
    assert store.entries("trials") == []


# -- damage: each is named in one line, never counted, and recomputed --------------------
def flip(body: bytes) -> bytes:
    i = len(body) // 2
    return body[:i] + bytes([body[i] ^ 0x10]) + body[i + 1:]


@pytest.mark.parametrize("damage, why", [
    (lambda raw, e: raw.put(e.location, flip(raw.get(e.location))), "SHA-256"),
    (lambda raw, e: raw.put(e.location, raw.get(e.location)[:-40]), "truncated"),
    (lambda raw, e: raw.delete(e.location), "missing"),
])
def test_damaged_unit_is_named_then_recomputed(make, damage, why):
    store, entry = published(make)
    damage(Raw(store), entry)
    with pytest.raises(StoreError) as info:
        store.read("trials")
    line = str(info.value)
    assert "\n" not in line and why in line and store.where(entry.location) in line
    done, found = store.committed("trials", RUN_A, {KEY: 6})
    assert done == set() and len(found) == 1 and why in found[0]
    assert store.entries("trials") == [] and store.read("trials").num_rows == 0  # no longer listed
    store.publish("trials", RUN_A, KEY, trials(6), partition=PART)  # the re-run
    assert store.committed("trials", RUN_A, {KEY: 6})[0] == {KEY}


def test_rewritten_schema_is_caught_even_with_a_matching_manifest(make):
    store, entry = published(make)
    raw = Raw(store)
    # an adversary rewrites `inside` as int64 *and* fixes the entry's size and hash
    table = trials(6).cast(pa.schema([f if f.name != "inside" else pa.field("inside", pa.int64()) for f in SCHEMA]))
    other = make()
    forged = other._put_unit("trials", RUN_A, KEY, table, PART, {})
    raw.put(entry.location, Raw(other).get(forged[0]))
    raw.put_entry("trials", RUN_A, KEY, Entry(**{**entry.__dict__, "size": forged[1], "sha256": forged[2]}).to_json())
    with pytest.raises(StoreError, match="inside is int64, not bool"):
        store.read("trials")
    assert store.committed("trials", RUN_A, {KEY: 6})[0] == set()


def test_more_rows_than_planned_are_caught(make):
    store, _ = published(make, rows=9)
    with pytest.raises(StoreError, match="9 rows, 6 planned"):
        store.read("trials", expected_rows={(RUN_A, KEY): 6})
    done, found = store.committed("trials", RUN_A, {KEY: 6})
    assert done == set() and "9 rows, 6 planned" in found[0]


def test_entry_of_another_run_or_pointing_elsewhere_is_caught(make):
    store, entry = published(make)
    raw = Raw(store)
    raw.put_entry("trials", RUN_B, KEY, entry.to_json())  # run A's entry copied into run B's manifest
    with pytest.raises(StoreError, match="another run"):
        store.read("trials")
    assert store.read("trials", RUN_A).num_rows == 6
    store.committed("trials", RUN_B, {KEY: 6})  # run B's re-run removes the foreign entry
    assert store.read("trials").num_rows == 6
    raw.put_entry("trials", RUN_A, KEY, Entry(**{**entry.__dict__, "location": "elsewhere.parquet"}).to_json())
    with pytest.raises(StoreError, match="points at elsewhere.parquet"):
        store.read("trials")
    raw.put_entry("trials", RUN_A, KEY, b"{not json")
    with pytest.raises(StoreError, match="not a manifest entry"):
        store.read("trials")
    assert store.committed("trials", RUN_A, {KEY: 6})[0] == set()


# -- runs ------------------------------------------------------------------------------------
def test_claims(make):
    store = make()
    store.prepare()
    assert store.claim_run(RUN_A, {"spec": {"seed": 1}}, exclusive=True) is True
    assert store.claim_run(RUN_A, {"spec": {"seed": 1}}, exclusive=True) is False  # a resume
    with pytest.raises(RunConflict) as info:
        store.claim_run(RUN_B, {"spec": {"seed": 2}}, exclusive=True)
    assert info.value.other == RUN_A and not info.value.orphan
    assert store.claim_run(RUN_B, {"spec": {"seed": 2}}, exclusive=False) is True  # --new-run
    assert set(store.runs()) == {RUN_A, RUN_B} and sorted(store.claimed().values()) == [RUN_A, RUN_B]


def test_two_writers_at_once_exactly_one_is_accepted(make):
    for attempt in range(10):
        store = make()
        store.prepare()
        barrier, outcome = threading.Barrier(2), {}

        def claim(run_id):
            barrier.wait()
            try:
                outcome[run_id] = store.claim_run(run_id, {"spec": {"run": run_id}}, exclusive=True)
            except RunConflict as exc:
                outcome[run_id] = exc

        threads = [threading.Thread(target=claim, args=(r,)) for r in (RUN_A, RUN_B)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        accepted = [r for r, v in outcome.items() if v is True]
        refused = [r for r, v in outcome.items() if isinstance(v, RunConflict)]
        assert len(accepted) == 1 and len(refused) == 1, (attempt, outcome)
        assert list(store.runs()) == accepted and list(store.claimed().values()) == accepted


def test_rows_without_a_record_keep_a_different_run_out(make):
    store, _ = published(make)
    Raw(store).forget_runs()
    assert store.orphans() == [RUN_A]
    with pytest.raises(RunConflict) as info:
        store.claim_run(RUN_B, {"spec": {}}, exclusive=True)
    assert info.value.orphan and info.value.other == RUN_A
    assert store.claim_run(RUN_A, {"spec": {"seed": 1}}, exclusive=True)  # the same run may re-record itself
    assert store.orphans() == [] and list(store.runs()) == [RUN_A]


def test_documents_and_fingerprint(make):
    store = make()
    store.prepare()
    empty = store.fingerprint()
    store.put_doc("stats", RUN_A, {"trials_per_s": 12.5})
    assert store.docs("stats") == {RUN_A: {"trials_per_s": 12.5}}
    after_doc = store.fingerprint()
    assert after_doc != empty
    store.publish("trials", RUN_A, KEY, trials(2), partition=PART)
    assert store.fingerprint() != after_doc
    with pytest.raises(ValueError):
        store.put_doc("elsewhere", RUN_A, {})


def test_concurrent_publishers_each_land_once(make):
    store = make()
    store.prepare()
    keys = [f"gaussian/d=3/n=20/r{i:07d}-{i + 1:07d}" for i in range(8)]

    def publish(i):
        store.publish("trials", RUN_A, keys[i], trials(5, offset=10 * i), partition=PART)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [e.key for e in store.entries("trials")] == keys
    assert store.read("trials").num_rows == 40
    assert store.committed("trials", RUN_A, {k: 5 for k in keys})[0] == set(keys)


def test_two_publishers_of_one_unit_interleaved_leave_a_consistent_pair(make):
    """The same spec started twice: A's bytes, then B's bytes and entry, then A's entry (stale).

    Equal rows, different bytes (timings differ). A's publish re-checks what is stored after
    writing its entry and rewrites the entry to name the bytes actually there, so readers see
    one verified unit, never "SHA-256 differs from the manifest".
    """
    store = make()
    store.prepare()
    rows_a, rows_b = trials(6), trials(6, offset=100)
    location, size, digest = store._put_unit("trials", RUN_A, KEY, rows_a, PART, {})       # A: bytes
    store.publish("trials", RUN_A, KEY, rows_b, partition=PART)                             # B: bytes + entry
    from mc_hull.store.base import Entry

    stale = Entry(kind="trials", run_id=RUN_A, key=KEY, location=location, rows=6, size=size, sha256=digest,
                  partition=PART, meta={})
    store._put_entry(stale)                                                                 # A: its entry
    settled = store._settle(stale)                                                          # A: the re-check
    report, tables = store.verify("trials")
    assert not report.problems and len(tables) == 1
    assert settled.sha256 != digest and store.read("trials").column("query").to_pylist() == list(range(100, 106))
    assert store.committed("trials", RUN_A, {KEY: 6}) == ({KEY}, [])


def test_other_kinds_share_the_manifest(make):
    store = make()
    store.prepare()
    points = pa.table({"index": pa.array([0, 1], pa.int64()), "inside": [True, None], "undecided": [False, True],
                       "status": ["inside", "undecided"], "certificate_value": [0.0, float("nan")],
                       "method": ["lp", "lp"]}, schema=POINT_SCHEMA)
    entry = store.publish("points", "cccccccc", "000000000-000000002", points)
    assert store.read("points", "cccccccc").num_rows == 2 and store.read("trials").num_rows == 0
    assert store.orphans() == []  # hull tests are not Monte Carlo runs
    assert entry.sha256 == sha256(Raw(store).get(entry.location))


def test_a_claimant_that_died_mid_claim_on_s3_holds_its_slot(moto, monkeypatch):
    """On object stores a lone candidate without its slot (a writer killed between PUT and LIST) keeps the slot."""
    from mc_hull.store import parquet

    store = ParquetStore(f"s3://contract/{uuid.uuid4().hex[:8]}?endpoint_override={moto}&scheme=http&region=us-east-1")
    store.prepare()
    store._write(store.where("_claims/00000000.cand/dead"), b'{"run_id": "dddddddddddd"}')
    monkeypatch.setattr(parquet, "STALE_SECONDS", 0.0)
    assert store.claimed() == {0: "dddddddddddd"}
    with pytest.raises(RunConflict) as info:
        store.claim_run(RUN_A, {"spec": {}}, exclusive=True)
    assert info.value.other == "dddddddddddd"
    assert store.claim_run(RUN_A, {"spec": {}}, exclusive=False)  # --new-run takes the next slot
    assert store.claimed() == {0: "dddddddddddd", 1: RUN_A}
    monkeypatch.setattr(parquet, "STALE_SECONDS", 3600.0)  # while fresh, the slot is undecided
    store._write(store.where("_claims/00000002.cand/alive"), b'{"run_id": "eeeeeeeeeeee"}')
    assert store.claimed()[2] is None
