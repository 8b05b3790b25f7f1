"""Help texts shared by the subcommands, built from the sampler and solver registries."""

from __future__ import annotations

from ..samplers import SAMPLERS, sampler_names

# The solver registry is imported by the help texts that name it (run, hull-test), not by every command
# that shares FORMAT or RUN_ID: it loads the solvers and SciPy's optimizers.


def distributions() -> str:
    """``gaussian, ball, ..., subspace (k=2), ...``: every sampler with its parameters and defaults."""
    out = []
    for name in sampler_names():
        params = SAMPLERS[name].params
        out.append(f"{name} ({', '.join(f'{k}={v}' for k, v in params.items())})" if params else name)
    return ", ".join(out)


DISTRIBUTION = ("distribution of the training sets and queries; one of: {names} "
                "(parameters with defaults in brackets, set with --param)")
SOLVER = ("membership solver; one of: {names}. auto = {default}, the fastest certified engine; "
          "lp, lp-ipm and cvxpy are slower references for cross-checks. Every answer is certified "
          "whatever the solver")
TOL = ("relative membership tolerance, a number in [{tol_min:g}, {tol_max:g}]: inside means a convex "
       "combination of training points within tol*s of the query (s: the training set's largest deviation "
       "from its mean); outside needs a separating margin above tol*s (default 1e-9)")
SEED = ("root seed (integer >= 0): every training set and query is drawn from a key derived from it "
        "and the cell, so the same seed gives the same rows on any machine and in any order")
NO_PROGRESS = "do not print progress (trials done, trials/s, ETA) while the run goes on"
FORMAT = ("output format: table (aligned text with notes), csv, json (one JSON document: an array "
          "of rows) or jsonl (JSON Lines: one object per row); default table")
RUN_ID = "only the run with this id (the 12-hex-digit id printed by mc-hull run; see _runs/ in DIR)"


def distribution_help() -> str:
    return DISTRIBUTION.format(names=distributions())


def solver_help() -> str:
    from ..solvers import DEFAULT_SOLVER, solver_names

    return SOLVER.format(names=", ".join(solver_names()), default=DEFAULT_SOLVER)


def tol_help() -> str:
    from ..solvers.certificates import TOL_MAX, TOL_MIN

    return TOL.format(tol_min=TOL_MIN, tol_max=TOL_MAX)
