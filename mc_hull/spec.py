"""The experiment spec: a frozen, validated description of a run, and its hash."""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from . import seeding
from .errors import McHullError, SpecError
from .stats import design
from .samplers import get_sampler
from .solvers import check_solver_name
from .solvers.certificates import check_tol  # the one tolerance rule

#: Largest N accepted in a spec (the exact curves are defined up to 1e12).
MAX_N = 10**12
#: Largest dimension accepted in a spec.
MAX_D = 4096
#: Largest trial count of a cell, shard or cap (the planner refuses far smaller plans unless forced).
MAX_TRIALS = 10**12
#: What a run measures per trial: membership only, or membership plus the distance to the hull.
MEASURES = ("membership", "distance")


@dataclass(frozen=True)
class _SpecFields:
    """The canonical field values of a :class:`Spec` (built only through ``Spec(...)``)."""

    distribution: str = "gaussian"
    dims: tuple[int, ...] = (2, 4, 8)
    sizes: tuple[int, ...] = (10, 100, 1000)
    trials: int = 1000
    queries_per_set: int | tuple | None = None
    seed: int = 0
    solver: str = "auto"
    tol: float = 1e-9
    shard_trials: int = 2000
    params: tuple = ()
    grid: tuple = ()
    target_halfwidth: float | None = None
    max_trials: int | None = None
    nested: bool = False
    measure: str = "membership"


class Spec(_SpecFields):
    """A Monte Carlo experiment over a grid of cells (d, N) for one distribution.

    ``Spec(**fields)``, :meth:`from_dict`, :meth:`from_json`, :meth:`with_overrides` and
    :func:`dataclasses.replace` all go through one normalisation and validation step
    (:func:`normalise`) before the frozen fields are set, so a Spec never changes after
    it is built.

    Attributes
    ----------
    distribution : str
        Sampler name (``mc_hull.samplers.sampler_names()``).
    dims : tuple of int
        Dimensions d, each in [1, 4096].  Given as a list, a comma-separated string
        (``"2,4,8"``) or ranges (``"2..12"``, ``"2..12..2"``: both ends included).
    sizes : tuple of int
        Training-set sizes N, each in [1, 10^12] (N <= d is valid: p is then 0).
    trials : int
        Query points tested per cell.
    queries_per_set : int or tuple of ((d, n), K) pairs
        K: query points tested against each training set; cell (d, N) uses
        ``ceil(trials / K)`` training sets (replicates), see :meth:`k_for`.  An int
        is one K for every cell.  Left unset, it is resolved per cell by the cost
        rule of :mod:`mc_hull.stats.design` (drawing X against a query, and the queries'
        correlation through X; one K per d for nested runs), and the resolved
        table is part of the canonical JSON (``{"d": {"N": K}}``).  Adaptive runs
        need one K: they get :func:`mc_hull.stats.design.default_queries_per_set`,
        ``min(50, trials // 30)``.
    seed : int
        Root seed; every stream is ``SeedSequence(seed, spawn_key=(dist, d, N, replicate, ...))``.
    solver : str
        Membership solver name (``"auto"`` is resolved to the default engine).
    tol : float
        Relative membership tolerance, in [TOL_MIN, TOL_MAX] = [1e-12, 1e-2].
    shard_trials : int
        Target number of trials per shard (the unit of work and of output files).
    params : tuple of (str, value) pairs
        Distribution parameters, sorted by name (a mapping is accepted).
    grid : tuple of (d, tuple of int) pairs, optional
        Per-dimension sizes (``mc-hull run --sizes auto`` resolves one around
        each d's transition).  When given it has one entry per d in ``dims``
        and ``sizes`` is set to the sorted union of its sizes.
    target_halfwidth : float, optional
        Adaptive runs (:mod:`mc_hull.runs.adaptive`): add replicates to a cell until
        its 99% clustered interval is narrower than ``2 * target_halfwidth``.
    max_trials : int, optional
        Cap on the trials of one cell in an adaptive run (default ``16 * trials``).
    nested : bool
        Nested runs (:mod:`mc_hull.jobs.nested`): per replicate one training set of
        each d's largest size, whose prefixes are the smaller ones; every query's
        entry size is located on the grid, which gives all sizes at once.
    measure : {"membership", "distance"}
        ``"distance"`` adds each trial's certified Euclidean distance to the hull
        (``distance_low``, ``distance_high``) and to the nearest training point
        (``nn_distance``), from :func:`mc_hull.hull_distance`.

    The optional fields (``nested`` when false, ``measure`` when "membership") are left out of the
    canonical JSON when unset,
    so specs without them keep their hash and run id.
    """

    __slots__ = ()

    def __init__(self, **fields_):
        super().__init__(**normalise(fields_))

    # -- derived -----------------------------------------------------------
    def k_for(self, d: int, n: int) -> int:
        """K, the queries per training set of cell (d, N)."""
        q = self.queries_per_set
        return q if isinstance(q, int) else _table(q)[(int(d), int(n))]

    @property
    def uniform_k(self) -> int | None:
        """The one K of every cell, or None when it varies by cell (the cost rule)."""
        q = self.queries_per_set
        if isinstance(q, int):
            return q
        ks = set(_table(q).values())
        return ks.pop() if len(ks) == 1 else None

    def replicates_for(self, d: int, n: int) -> int:
        """Training sets of cell (d, N)."""
        return math.ceil(self.trials / self.k_for(d, n))

    def queries_in(self, replicate: int, d: int, n: int) -> int:
        """Queries tested against training set ``replicate`` of cell (d, N) (the last one may hold fewer).

        Replicates beyond the cell's planned ones (added by adaptive runs) hold K queries.
        """
        k = self.k_for(d, n)
        if replicate >= math.ceil(self.trials / k):
            return k
        return min(k, self.trials - replicate * k)

    @property
    def cells(self) -> list[tuple[int, int]]:
        """The grid (d, N), in order."""
        if self.grid:
            per_d = dict(self.grid)
            return [(d, n) for d in self.dims for n in per_d[d]]
        return [(d, n) for d in self.dims for n in self.sizes]

    def sizes_for(self, d: int) -> tuple[int, ...]:
        """The sizes N of dimension ``d`` (the grid's, else ``sizes``); used by nested runs."""
        return dict(self.grid)[d] if self.grid else self.sizes

    @property
    def draws(self) -> int:
        """The draw scheme its trials follow (:data:`mc_hull.seeding.DRAW_SCHEME`), recorded with its run."""
        return seeding.DRAW_SCHEME

    @property
    def planned_trials(self) -> int:
        return self.trials * len(self.cells)

    def sampler(self, d: int):
        return get_sampler(self.distribution, d, **dict(self.params))

    # -- serialisation -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
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
        if not isinstance(self.queries_per_set, int):
            table: dict = {}
            for (d, n), k in self.queries_per_set:
                table.setdefault(str(d), {})[str(n)] = k
            out["queries_per_set"] = table
        if not out["nested"]:
            del out["nested"]
        if out["measure"] == "membership":
            del out["measure"]
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
    def from_dict(cls, data: dict[str, Any], auto=None) -> "Spec":
        """Build a spec from a mapping (TOML or JSON), naming any unknown field.

        ``auto`` resolves ``sizes = "auto"`` (see :func:`normalise`); the mapping is validated once.
        """
        if not isinstance(data, dict):
            raise SpecError("spec: must be a table of fields")
        spec = object.__new__(cls)
        _SpecFields.__init__(spec, **normalise(data, auto))
        return spec

    @classmethod
    def from_json(cls, text: str) -> "Spec":
        try:
            data = json.loads(text, object_pairs_hook=unique_json_keys())
        except SpecError:
            raise
        except (ValueError, RecursionError) as exc:
            raise SpecError(f"spec: not valid JSON ({type(exc).__name__})") from None
        return cls.from_dict(data)

    def with_overrides(self, **changes) -> "Spec":
        """A copy with the non-None ``changes`` applied and validated.

        Explicit ``sizes`` replace a per-d ``grid``.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        if "sizes" in changes and "grid" not in changes:
            changes["grid"] = ()
        if (not isinstance(self.queries_per_set, int) and "queries_per_set" not in changes
                and set(changes) & _K_INPUTS):
            changes["queries_per_set"] = None   # a rule-derived table follows the new cells
        return replace(self, **changes)


FIELDS = tuple(f.name for f in fields(_SpecFields))
#: Fields the per-cell K of the cost rule depends on.
_K_INPUTS = {"distribution", "dims", "sizes", "grid", "trials", "nested", "target_halfwidth"}


@lru_cache(maxsize=256)
def _table(pairs: tuple) -> dict:
    return dict(pairs)


def normalise(data: dict[str, Any], auto=None) -> dict[str, Any]:
    """Canonical, validated field values from user values; SpecError names the first bad field.

    The one normalisation path of every Spec: lists and strings become tuples of ints
    (with ``a..b[..step]`` ranges for dims), mappings become sorted pairs, ``solver =
    "auto"`` is resolved, ``tol`` becomes a float, ``sizes`` follows a ``grid`` and an
    adaptive run's ``max_trials`` defaults to ``16 * trials``.

    ``sizes = "auto"`` needs ``auto``, a callable ``auto(fields) -> {d: [N, ...]}`` called once
    every other field is valid (:func:`mc_hull.runs.adaptive.auto_sizes`); its grid replaces any
    ``grid`` given, and the spec is validated once, with its sizes.
    """
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise SpecError(f"{unknown[0]}: unknown spec field; valid: {', '.join(FIELDS)}")
    out = {f.name: f.default for f in fields(_SpecFields)}
    out.update(data)
    resolve = is_auto(out["sizes"])
    if resolve and auto is None:
        raise SpecError("sizes: 'auto' is resolved when the spec is assembled (mc-hull run or submit; "
                        "Python: Spec.from_dict(data, auto=mc_hull.runs.adaptive.auto_sizes()))")
    _check_fields(out)
    if resolve:
        out["grid"], out["sizes"] = auto(dict(out)), ()
    else:
        out["sizes"] = int_list("sizes", out["sizes"])
        for n in out["sizes"]:
            _check_int("sizes", n, 1, MAX_N)
        if len(set(out["sizes"])) != len(out["sizes"]):
            raise SpecError(f"sizes: contains duplicates: {list(out['sizes'])}")
    out["grid"] = _grid(out["grid"])
    if out["grid"]:
        per_d = dict(out["grid"])
        if sorted(per_d) != sorted(out["dims"]):
            raise SpecError(f"grid: must have exactly one entry per d in dims {list(out['dims'])}, "
                            f"has {[d for d, _ in out['grid']]}")
        for d, ns in out["grid"]:
            if len(set(ns)) != len(ns):
                raise SpecError(f"grid: d = {d} contains duplicates: {list(ns)}")
            for n in ns:
                _check_int(f"grid (d = {d})", n, 1, MAX_N)
        out["sizes"] = tuple(sorted({n for _, ns in out["grid"] for n in ns}))
    out["queries_per_set"] = _queries(out)
    return out


def _check_fields(out: dict) -> None:
    """Validate (and canonicalise in place) every field but the sizes, the grid and K."""
    if not isinstance(out["distribution"], str):
        raise SpecError(f"distribution: must be a name, got {_short(out['distribution'])}")
    out["dims"] = parse_dims(out["dims"])
    out["params"] = _params(out["params"])
    for d in out["dims"]:
        _check_int("dims", d, 1, MAX_D)
    if len(set(out["dims"])) != len(out["dims"]):
        raise SpecError(f"dims: contains duplicates: {list(out['dims'])}")
    _check_int("trials", out["trials"], 1, MAX_TRIALS)
    _check_int("seed", out["seed"], 0, 2**63 - 1)
    _check_int("shard_trials", out["shard_trials"], 1, MAX_TRIALS)
    out["tol"] = _tol(out["tol"])
    if not isinstance(out["solver"], str):
        raise SpecError(f"solver: must be a name, got {_short(out['solver'])}")
    out["solver"] = check_solver_name(out["solver"])
    h = out["target_halfwidth"]
    if h is not None:
        if not _is_real(h) or not (0 < h <= 0.5):
            raise SpecError(f"target_halfwidth: must be a number in (0, 0.5], got {_short(h)}")
        out["target_halfwidth"] = float(h)
        if out["max_trials"] is None:
            out["max_trials"] = 16 * out["trials"]
        _check_int("max_trials", out["max_trials"], out["trials"], MAX_TRIALS)
    elif out["max_trials"] is not None:
        raise SpecError("max_trials: only used with target_halfwidth (an adaptive run)")
    if not isinstance(out["nested"], bool):
        raise SpecError(f"nested: must be true or false, got {_short(out['nested'])}")
    if out["nested"] and out["target_halfwidth"] is not None:
        raise SpecError("nested: adaptive runs (target_halfwidth) are not supported with nested = true")
    if not isinstance(out["measure"], str) or out["measure"] not in MEASURES:
        raise SpecError(f"measure: must be one of {', '.join(MEASURES)}, got {_short(out['measure'])}")
    if out["measure"] == "distance" and out["nested"]:
        raise SpecError("measure: distance is not supported with nested = true")
    for d in out["dims"]:  # unknown distribution or bad parameters name themselves
        get_sampler(out["distribution"], d, **dict(out["params"]))


def _queries(out: dict):
    """``queries_per_set`` in canonical form: an int, or the per-cell table ``(((d, n), K), ...)``.

    Unset: the cost rule of :mod:`mc_hull.stats.design` per cell (one K per d when
    nested), or the fixed default for adaptive runs.  A table (from a stored spec)
    must name exactly the spec's cells, with one K per d when nested.
    """
    q = out["queries_per_set"]
    per_d = dict(out["grid"]) if out["grid"] else None
    cells = [(d, n) for d in out["dims"] for n in (per_d[d] if per_d else out["sizes"])]
    if q is None:
        if out["target_halfwidth"] is not None:
            return design.default_queries_per_set(out["trials"])
        return design.queries_table(out["distribution"], cells, out["trials"], bool(out["nested"]),
                                    lambda d: per_d[d] if per_d else out["sizes"])
    if isinstance(q, dict) or (isinstance(q, (list, tuple)) and not isinstance(q, str)):
        if out["target_halfwidth"] is not None:
            raise SpecError("queries_per_set: adaptive runs (target_halfwidth) need one K for every cell")
        table = {}
        try:
            if isinstance(q, dict):      # the JSON/TOML form {d: {N: K}}
                for d, ks in q.items():
                    for n, k in ks.items():
                        table[(_to_int(str(d)), _to_int(str(n)))] = k
            else:                        # the canonical form (((d, n), K), ...)
                for (d, n), k in q:
                    table[(_to_int(d), _to_int(n))] = k
        except (TypeError, ValueError, AttributeError, SpecError):
            raise SpecError(f"queries_per_set: must be an integer or a table {{d: {{N: K}}}}, got {_short(q)}") \
                from None
        if sorted(table) != sorted(cells):
            raise SpecError("queries_per_set: a per-cell table must name exactly the spec's cells (d, N)")
        for (d, n), k in table.items():
            _check_int(f"queries_per_set (d = {d}, N = {n})", k, 1, MAX_TRIALS)
        if out["nested"] and any(len({table[(d, n)] for n in (per_d[d] if per_d else out["sizes"])}) > 1
                                 for d in out["dims"]):
            raise SpecError("queries_per_set: a nested run has one K per d")
        return tuple(sorted(table.items()))
    _check_int("queries_per_set", q, 1, MAX_TRIALS)
    return q


def _short(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a bad field's message stays one short line)."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _tol(value) -> float:
    """``tol`` as a float in [TOL_MIN, TOL_MAX] (:func:`mc_hull.solvers.certificates.check_tol`)."""
    try:
        return check_tol(value if _is_real(value) or not isinstance(value, (int, float)) else float(value))
    except McHullError as exc:
        raise SpecError(" ".join(str(exc).split())[:300]) from None


def unique_json_keys(label: str = "spec"):
    """A ``json.loads`` object hook refusing a key given twice (SpecError naming it), as TOML refuses it."""
    def hook(pairs) -> dict:
        out = {}
        for key, value in pairs:
            if key in out:
                raise SpecError(f"{label}: field {key!r} is given twice")
            out[key] = value
        return out
    return hook


def _params(value) -> tuple:
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (tuple, list)) and all(
            isinstance(e, (tuple, list)) and len(e) == 2 for e in value):
        items = [tuple(e) for e in value]
    else:
        raise SpecError(f"params: must be a table of name = value, got {_short(value)}")
    for name, v in items:
        if not isinstance(name, str):
            raise SpecError(f"params: parameter names must be strings, got {_short(name)}")
        if not isinstance(v, (str, int, float)):  # bool is an int: samplers refuse it by name
            raise SpecError(f"params.{name}: must be a number or a string, got {_short(v)}")
    return tuple(sorted(items))


def _range(field: str, text: str) -> list[int]:
    """``"a..b"`` or ``"a..b..step"`` (both ends included) as a list of ints."""
    parts = [p.strip() for p in text.split("..")]
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        lo, hi, *rest = (_to_int(p) for p in parts)
        step = rest[0] if rest else 1
    except (ValueError, OverflowError):
        raise SpecError(f"{field}: a range is START..STOP or START..STOP..STEP with integers, "
                        f"e.g. 2..12 or 2..12..2, got {text!r}") from None
    if step < 1:
        raise SpecError(f"{field}: the step of range {text!r} must be >= 1")
    if hi < lo:
        raise SpecError(f"{field}: range {text!r} is empty (STOP {hi} < START {lo})")
    if (hi - lo) // step + 1 > MAX_D:
        raise SpecError(f"{field}: range {text!r} has more than {MAX_D} values")
    return list(range(lo, hi + 1, step))


def _to_int(item) -> int:
    """An int from an int, an integral float or a string like ``"1e3"``; ValueError otherwise."""
    if isinstance(item, bool):
        raise ValueError
    if isinstance(item, str):
        item = item.strip()
        if not item:
            raise ValueError
        item = float(item) if any(c in item for c in ".eE") else int(item)
    if isinstance(item, float):
        if not item.is_integer():
            raise ValueError
        return int(item)
    if isinstance(item, int):
        return item
    raise ValueError


def parse_dims(value) -> tuple[int, ...]:
    """Dimensions from a list, a comma-separated string or ranges (``"2..12"``, ``"2..12..2"``, ``"2..4,8"``)."""
    return int_list("dims", value, ranges=True)


def int_list(field: str, value, *, ranges: bool = False) -> tuple[int, ...]:
    """Parse a non-empty tuple of ints from a list or a comma-separated string like ``"10,1e3"``.

    With ``ranges``, string items ``a..b`` and ``a..b..step`` expand (both ends included);
    without, a range is refused with a message saying where ranges are allowed.
    """
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, (int, float)) and not isinstance(items, bool):
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise SpecError(f"{field}: must be a list of integers like 2,4,8, got {_short(value)}")
    out = []
    for item in items:
        if isinstance(item, str) and ".." in item:
            if not ranges:
                raise SpecError(f"{field}: ranges like {item.strip()!r} are for dims; list the sizes "
                                "(e.g. 10,100,1e3) or use auto")
            out.extend(_range(field, item.strip()))
            continue
        try:
            out.append(_to_int(item))
        except (TypeError, ValueError, OverflowError):
            raise SpecError(f"{field}: must be a list of integers like 2,4,8, got {_short(value)}") from None
    if not out:
        raise SpecError(f"{field}: must not be empty")
    return tuple(out)


def _grid(value) -> tuple:
    """Normalise a per-d grid ({d: [N, ...]} or [(d, [N, ...]), ...]) to sorted (d, tuple) pairs."""
    if value is None or (isinstance(value, (dict, tuple, list)) and not value):
        return ()
    try:
        items = value.items() if isinstance(value, dict) else value
        out = {}
        for d, ns in items:
            d_int = _to_int(d) if isinstance(d, (int, str)) else None
            if d_int is None or str(d_int) != str(d).strip() or d_int in out:
                raise ValueError
            out[d_int] = int_list(f"grid (d = {d_int})", ns)
    except (TypeError, ValueError, OverflowError):
        raise SpecError(f"grid: must map each dimension d to a list of sizes, e.g. "
                        f"{{\"2\" = [4, 10, 40]}}, got {_short(value)}") from None
    return tuple(sorted(out.items()))


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(f"{name}: must be an integer, got {_short(value)}")
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise SpecError(f"{name}: must be {rng}, got {value}")


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
    except RecursionError:
        raise SpecError(f"spec: {path} is nested too deeply to be a spec") from None
    except OSError as exc:
        raise SpecError(f"spec: cannot read {path}: {exc.strerror or exc}") from None


#: Keys of a multi-panel spec file beside the shared spec fields, and of each panel.
PANEL_FILE_KEYS = ("title", "panels")
PANEL_KEYS = ("name", "title")


@dataclass(frozen=True)
class Panel:
    """One spec of a (possibly multi-panel) spec file: its label, title and Spec."""

    name: str
    title: str
    spec: Spec


def is_auto(value) -> bool:
    """Whether a ``sizes`` value asks for automatic sizes (``"auto"``)."""
    return isinstance(value, str) and value.strip().lower() == "auto"


def panel_mappings(data: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, title, spec mapping) per panel of a spec mapping.

    A plain spec is one unnamed panel.  A file with ``[[panels]]`` tables gives one
    mapping per panel: the file's shared fields overlaid by the panel's own; ``name``
    (default: a, b, c, ...) and ``title`` label it and are not spec fields.
    """
    if not isinstance(data, dict):
        raise SpecError("spec: must be a table of fields")
    if "panels" not in data:
        return [("", str(data.get("title", "")), {k: v for k, v in data.items() if k != "title"})]
    panels = data["panels"]
    if not isinstance(panels, list) or not panels or not all(isinstance(p, dict) for p in panels):
        raise SpecError("panels: must be a non-empty array of tables ([[panels]])")
    shared = {k: v for k, v in data.items() if k not in PANEL_FILE_KEYS}
    out, seen = [], set()
    for i, panel in enumerate(panels):
        name = panel.get("name", chr(ord("a") + i) if i < 26 else str(i + 1))
        if not isinstance(name, str) or not name.strip() or name in seen:
            raise SpecError(f"panels: panel {i + 1} needs a unique non-empty name, got {_short(name)}")
        seen.add(name)
        fields_ = {**shared, **{k: v for k, v in panel.items() if k not in PANEL_KEYS}}
        out.append((name, str(panel.get("title", "")), fields_))
    return out


def load_panels(data: dict[str, Any], auto=None) -> list[Panel]:
    """Every panel of a spec mapping as a validated :class:`Panel` (SpecError names the panel).

    ``auto`` resolves the panels' ``sizes = "auto"`` (see :func:`normalise`).
    """
    out = []
    many = "panels" in data if isinstance(data, dict) else False
    for name, title, mapping in panel_mappings(data):
        try:
            out.append(Panel(name, title, Spec.from_dict(mapping, auto)))
        except SpecError as exc:
            raise SpecError(f"panels.{name}.{exc}" if many else str(exc)) from None
    return out


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml")
                  for p in resources.files("mc_hull.presets").iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> dict[str, Any]:
    """The mapping of a named preset (``mc_hull/presets/NAME.toml``)."""
    if name not in preset_names():
        raise SpecError(f"preset: unknown {name!r}; valid: {', '.join(preset_names())}")
    return tomllib.loads(resources.files("mc_hull.presets").joinpath(f"{name}.toml").read_text())
