"""The experiment spec: a frozen, validated description of a run, and its hash."""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import InputError, SpecError
from .samplers import get_sampler
from .solvers import check_solver_name
from .solvers.certificates import check_tol

#: Largest N accepted in a spec (the exact curves are defined up to 1e12).
MAX_N = 10**12


@dataclass(frozen=True)
class Spec:
    """A Monte Carlo experiment over a grid of cells (d, N) for one distribution.

    Attributes
    ----------
    distribution : str
        Sampler name (``mc_hull.samplers.sampler_names()``).
    dims : tuple of int
        Dimensions d, each >= 1.
    sizes : tuple of int
        Training-set sizes N, each >= 1 (N <= d is valid: p is then 0).
    trials : int
        Query points tested per cell.
    queries_per_set : int, optional
        K: query points tested against each training set; a cell uses
        ``ceil(trials / K)`` training sets (replicates).  Default
        :func:`mc_hull.nested.default_queries_per_set`: ``min(50, trials // 30)``,
        the rule of :func:`mc_hull.nested.efficient_queries_per_set` (drawing X against
        a query, and the queries' correlation through X) at the most clustered cells,
        with at least 30 training sets per cell.
    seed : int
        Root seed; every stream is ``SeedSequence(seed, spawn_key=(dist, d, N, replicate, ...))``.
    solver : str
        Membership solver name (``"auto"`` is resolved when the spec is built).
    tol : float
        Relative membership tolerance.
    shard_trials : int
        Target number of trials per shard (the unit of work and of output files).
    params : tuple of (str, value) pairs
        Distribution parameters, sorted by name.
    grid : tuple of (d, tuple of int) pairs, optional
        Per-dimension sizes (``mc-hull run --sizes auto`` resolves one around
        each d's transition).  When given it has one entry per d in ``dims``
        and ``sizes`` is set to the sorted union of its sizes.
    target_halfwidth : float, optional
        Adaptive runs (:mod:`mc_hull.adaptive`): add replicates to a cell until
        its 99% clustered interval is narrower than ``2 * target_halfwidth``.
    max_trials : int, optional
        Cap on the trials of one cell in an adaptive run (default ``16 * trials``).
    nested : bool
        Nested runs (:mod:`mc_hull.nested_job`): per replicate one training set of
        each d's largest size, whose prefixes are the smaller ones; every query's
        entry size is located on the grid, which gives all sizes at once.

    The optional fields (and ``nested`` when false) are left out of the canonical JSON when unset,
    so specs without them keep their hash and run id.
    """

    distribution: str = "gaussian"
    dims: tuple[int, ...] = (2, 4, 8)
    sizes: tuple[int, ...] = (10, 100, 1000)
    trials: int = 1000
    queries_per_set: int | None = None
    seed: int = 0
    solver: str = "auto"
    tol: float = 1e-9
    shard_trials: int = 2000
    params: tuple = ()
    grid: tuple = ()
    target_halfwidth: float | None = None
    max_trials: int | None = None
    nested: bool = False

    def __post_init__(self):
        validate(self)

    # -- derived -----------------------------------------------------------
    @property
    def replicates(self) -> int:
        """Training sets per cell."""
        return math.ceil(self.trials / self.queries_per_set)

    def queries_in(self, replicate: int) -> int:
        """Queries tested against training set ``replicate`` (the last one may hold fewer).

        Replicates beyond ``replicates`` (added by adaptive runs) hold K queries.
        """
        if replicate >= self.replicates:
            return self.queries_per_set
        return min(self.queries_per_set, self.trials - replicate * self.queries_per_set)

    @property
    def cells(self) -> list[tuple[int, int]]:
        """The grid (d, N), in order."""
        if self.grid:
            per_d = dict(self.grid)
            return [(d, n) for d in self.dims for n in per_d[d]]
        return [(d, n) for d in self.dims for n in self.sizes]

    def sizes_for(self, d: int) -> tuple[int, ...]:
        """The sizes N of dimension ``d``."""
        return dict(self.grid)[d] if self.grid else self.sizes

    @property
    def planned_trials(self) -> int:
        return self.trials * len(self.cells)

    def sampler(self, d: int):
        return get_sampler(self.distribution, d, **dict(self.params))

    # -- serialisation -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dims"] = list(self.dims)
        out["sizes"] = list(self.sizes)
        out["params"] = dict(self.params)
        if self.grid:
            out["grid"] = {str(d): list(ns) for d, ns in self.grid}
        else:
            del out["grid"]
        for key in ("target_halfwidth", "max_trials"):
            if out[key] is None:
                del out[key]
        if not out["nested"]:
            del out["nested"]
        return out

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): what is hashed and stored with results."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @property
    def run_id(self) -> str:
        """Short run identifier: the first 12 hex digits of the hash."""
        return self.hash[:12]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Spec":
        """Build a spec from a mapping (TOML or JSON), naming any unknown field."""
        if not isinstance(data, dict):
            raise SpecError("spec: must be a table of fields")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise SpecError(f"{unknown[0]}: unknown spec field; valid: {', '.join(valid)}")
        data = dict(data)
        for key in ("dims", "sizes"):
            if key in data:
                data[key] = _int_tuple(key, data[key])
        if "params" in data:
            if not isinstance(data["params"], dict):
                raise SpecError("params: must be a table of name = value")
            data["params"] = tuple(sorted(data["params"].items()))
        if "grid" in data:
            data["grid"] = _grid(data["grid"])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "Spec":
        return cls.from_dict(json.loads(text))

    def with_overrides(self, **changes) -> "Spec":
        """A copy with the non-None ``changes`` applied and validated."""
        changes = {k: v for k, v in changes.items() if v is not None}
        for key in ("dims", "sizes"):
            if key in changes:
                changes[key] = _int_tuple(key, changes[key])
        if "params" in changes and isinstance(changes["params"], dict):
            changes["params"] = tuple(sorted(changes["params"].items()))
        if "grid" in changes:
            changes["grid"] = _grid(changes["grid"])
        elif "sizes" in changes:
            changes["grid"] = ()  # explicit sizes replace a per-d grid
        return replace(self, **changes)


def _int_tuple(field: str, value) -> tuple[int, ...]:
    """Parse a list of integers from a list or a comma-separated string like "10,1e3"."""
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, (int, float)):
        items = [items]
    out = []
    try:
        for item in items:
            if isinstance(item, bool):
                raise ValueError
            if isinstance(item, str):
                item = item.strip()
                num = float(item) if any(c in item for c in ".eE") else int(item)
            else:
                num = item
            if isinstance(num, float):
                if not num.is_integer():
                    raise ValueError
                num = int(num)
            out.append(int(num))
    except (TypeError, ValueError, OverflowError):
        raise SpecError(f"{field}: must be a list of integers like 2,4,8, got {value!r}") from None
    if not out:
        raise SpecError(f"{field}: must not be empty")
    return tuple(out)


def _grid(value) -> tuple:
    """Normalise a per-d grid ({d: [N, ...]} or [(d, [N, ...]), ...]) to sorted (d, tuple) pairs."""
    if not value:
        return ()
    items = value.items() if isinstance(value, dict) else value
    out = {}
    try:
        for d, ns in items:
            d_int = int(d) if not isinstance(d, bool) else None
            if d_int is None or str(d_int) != str(d).strip():
                raise ValueError
            out[d_int] = _int_tuple(f"grid (d = {d_int})", ns)
    except (TypeError, ValueError):
        raise SpecError(f"grid: must map each dimension d to a list of sizes, e.g. "
                        f"{{\"2\" = [4, 10, 40]}}, got {value!r}") from None
    return tuple(sorted(out.items()))


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(f"{name}: must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise SpecError(f"{name}: must be {rng}, got {value}")


def validate(spec: Spec) -> None:
    """Raise SpecError naming the first bad field and its allowed values."""
    if not isinstance(spec.distribution, str):
        raise SpecError(f"distribution: must be a name, got {spec.distribution!r}")
    for name in ("dims", "sizes"):
        value = getattr(spec, name)
        if not isinstance(value, tuple) or not value:
            raise SpecError(f"{name}: must be a non-empty list of integers")
        if len(set(value)) != len(value):
            raise SpecError(f"{name}: contains duplicates: {list(value)}")
    for d in spec.dims:
        _check_int("dims", d, 1, 4096)
    for n in spec.sizes:
        _check_int("sizes", n, 1, MAX_N)
    _check_int("trials", spec.trials, 1)
    if spec.queries_per_set is None:
        from .nested import default_queries_per_set

        if isinstance(spec.trials, int) and not isinstance(spec.trials, bool) and spec.trials >= 1:
            object.__setattr__(spec, "queries_per_set", default_queries_per_set(spec.trials))
    _check_int("queries_per_set", spec.queries_per_set, 1)
    _check_int("seed", spec.seed, 0, 2**63 - 1)
    _check_int("shard_trials", spec.shard_trials, 1)
    try:
        check_tol(spec.tol)
    except InputError as exc:
        raise SpecError(str(exc)) from None
    if not isinstance(spec.solver, str):
        raise SpecError(f"solver: must be a name, got {spec.solver!r}")
    resolved = check_solver_name(spec.solver)
    if resolved != spec.solver:
        object.__setattr__(spec, "solver", resolved)
    object.__setattr__(spec, "tol", float(spec.tol))
    if spec.grid:
        if not isinstance(spec.grid, tuple) or not all(
                isinstance(e, tuple) and len(e) == 2 and isinstance(e[1], tuple) for e in spec.grid):
            raise SpecError("grid: must be (d, sizes) pairs; build specs with Spec.from_dict")
        per_d = dict(spec.grid)
        if sorted(per_d) != sorted(spec.dims) or len(per_d) != len(spec.grid):
            raise SpecError(f"grid: must have exactly one entry per d in dims {list(spec.dims)}, "
                            f"has {[d for d, _ in spec.grid]}")
        for d, ns in spec.grid:
            if not ns:
                raise SpecError(f"grid: d = {d} has no sizes")
            if len(set(ns)) != len(ns):
                raise SpecError(f"grid: d = {d} contains duplicates: {list(ns)}")
            for n in ns:
                _check_int(f"grid (d = {d})", n, 1, MAX_N)
        object.__setattr__(spec, "sizes", tuple(sorted({n for _, ns in spec.grid for n in ns})))
    if spec.target_halfwidth is not None:
        h = spec.target_halfwidth
        if not isinstance(h, (int, float)) or isinstance(h, bool) or not (0 < h <= 0.5):
            raise SpecError(f"target_halfwidth: must be a number in (0, 0.5], got {h!r}")
        object.__setattr__(spec, "target_halfwidth", float(h))
        if spec.max_trials is None:
            object.__setattr__(spec, "max_trials", 16 * spec.trials)
        _check_int("max_trials", spec.max_trials, spec.trials)
    elif spec.max_trials is not None:
        raise SpecError("max_trials: only used with target_halfwidth (an adaptive run)")
    if not isinstance(spec.nested, bool):
        raise SpecError(f"nested: must be true or false, got {spec.nested!r}")
    if spec.nested and spec.target_halfwidth is not None:
        raise SpecError("nested: adaptive runs (target_halfwidth) are not supported with nested = true")
    for d in spec.dims:  # unknown distribution or bad parameters name themselves
        spec.sampler(d)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Parse a spec file into a mapping; a parse error names the file and line."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SpecError(f"spec: file not found: {path}") from None
    except IsADirectoryError:
        raise SpecError(f"spec: is a directory, not a TOML file: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec: {path} does not parse as TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"spec: {path} is not UTF-8 text") from None


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml")
                  for p in resources.files("mc_hull.presets").iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> dict[str, Any]:
    """The mapping of a named preset (``mc_hull/presets/NAME.toml``)."""
    if name not in preset_names():
        raise SpecError(f"preset: unknown {name!r}; valid: {', '.join(preset_names())}")
    return tomllib.loads(resources.files("mc_hull.presets").joinpath(f"{name}.toml").read_text())
