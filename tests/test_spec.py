"""Spec validation, overrides, hashing and presets."""

import pytest

from mc_hull.errors import SpecError
from mc_hull.spec import Spec, load_preset, load_toml, preset_names


def test_defaults_validate_and_resolve_auto_solver():
    spec = Spec()
    assert spec.solver != "auto"
    # K per cell from the cost rule (mc_hull.stats.design), at most trials // 30 = 33 (30 training sets)
    assert spec.k_for(8, 1000) == 33 and spec.replicates_for(8, 1000) == 31
    assert spec.k_for(2, 10) < 33                     # cheap X, correlated queries: fewer per set
    assert spec.uniform_k is None
    assert spec.planned_trials == 9 * 1000


@pytest.mark.parametrize("changes, field", [
    ({"dims": (0,)}, "dims"),
    ({"sizes": (0,)}, "sizes"),
    ({"trials": 0}, "trials"),
    ({"queries_per_set": 0}, "queries_per_set"),
    ({"distribution": "nope"}, "distribution"),
    ({"solver": "nope"}, "solver"),
    ({"tol": 0.0}, "tol"),
    ({"tol": float("nan")}, "tol"),
    ({"seed": -1}, "seed"),
    ({"dims": (2, 2)}, "dims"),
    ({"params": (("k", 3),)}, "params"),
])
def test_bad_fields_name_themselves(changes, field):
    with pytest.raises(SpecError) as err:
        Spec(**changes)
    assert str(err.value).startswith(field)


def test_unknown_names_list_valid_ones():
    with pytest.raises(SpecError, match="valid: ball, beta, cube, gaussian"):
        Spec(distribution="uniform")
    with pytest.raises(SpecError, match="valid: auto"):
        Spec(solver="simplex")
    with pytest.raises(SpecError, match="unknown spec field"):
        Spec.from_dict({"dimz": [2]})


def test_lists_from_strings_and_scientific_notation():
    spec = Spec().with_overrides(dims="2, 4", sizes="10,1e3")
    assert spec.dims == (2, 4) and spec.sizes == (10, 1000)
    for bad in ("a,b", "1.5", "", "2,,3"):
        with pytest.raises(SpecError, match="sizes"):
            Spec().with_overrides(sizes=bad)


def test_n_at_most_d_is_valid():
    assert Spec(dims=(8,), sizes=(3, 8)).cells == [(8, 3), (8, 8)]


def test_hash_is_canonical_and_sensitive():
    a = Spec(dims=(2, 4), seed=1)
    b = Spec.from_json(a.to_json())
    assert a == b and a.hash == b.hash and len(a.run_id) == 12
    assert Spec(dims=(2, 4), seed=2).hash != a.hash


def test_last_replicate_takes_the_remainder():
    spec = Spec(trials=250, queries_per_set=100)
    assert spec.replicates_for(2, 10) == 3 and spec.uniform_k == 100
    assert [spec.queries_in(r, 2, 10) for r in range(3)] == [100, 100, 50]


def test_toml_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("dims = [2, 4\n")
    with pytest.raises(SpecError, match="does not parse"):
        load_toml(bad)
    with pytest.raises(SpecError, match="not found"):
        load_toml(tmp_path / "missing.toml")
    good = tmp_path / "good.toml"
    good.write_text('distribution = "cube"\ndims = [3]\nsizes = [5, 50]\ntrials = 10\n')
    assert Spec.from_dict(load_toml(good)).distribution == "cube"


def test_quick_preset_is_valid():
    assert "quick" in preset_names()
    spec = Spec.from_dict(load_preset("quick"))
    assert spec.distribution == "gaussian" and len(spec.cells) >= 9
    with pytest.raises(SpecError, match="valid: "):
        load_preset("slow")
