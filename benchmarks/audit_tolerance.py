"""Audit of the tolerance rule: 52 hostile cases, counted as tried / wrong / refused / crashed.

Run it against two checkouts to compare them, e.g.
``PYTHONPATH=/path/to/old python benchmarks/audit_tolerance.py`` and the same with the new tree.
Cases: a query's answer beside far queries in the same batch, data shifted by 1e9..1e15, a set's
own points at tol 1e-18..1e-12, magnitudes 1e-300..1.4e308, tolerances of the wrong type, complex input.
"wrong" is an answer that contradicts the case's construction; "refused" is a one-line InputError.
"""
import numpy as np, warnings, json, sys
warnings.filterwarnings("ignore")
import mc_hull
from scipy.optimize import linprog
res = {"tried": 0, "wrong": 0, "refused": 0, "crash": 0}
def pushed(X, eps, k=4, seed=123):
    rng = np.random.default_rng(seed); c = X.mean(0); s = np.abs(X - c).max(); out = []
    for _ in range(k):
        w = rng.standard_normal(X.shape[1]); w /= np.abs(w).sum(); v = X[np.argmax(X @ w)]
        out.append(v + eps * s * np.sign(w))
    return np.array(out)
def case(fn):
    res["tried"] += 1
    try:
        ok = fn()
        if ok == "refused": res["refused"] += 1
        elif not ok: res["wrong"] += 1
    except Exception as e:
        if type(e).__name__ in ("InputError",): res["refused"] += 1
        else: res["crash"] += 1
for seed in range(5):
    rng = np.random.default_rng(seed); d = 2 + seed % 4
    X = rng.standard_normal((200, d)); Q = pushed(X, 1e-6)
    for extra in (1e6, 1e12, 1e300):
        case(lambda: not mc_hull.in_hull(X, np.vstack([Q, [extra] * d]))[:4].any())
    for off in (1e9, -3e12, 1e15):
        Y = X * 5; P = pushed(Y, 0.5 / np.abs(Y - Y.mean(0)).max())
        case(lambda: not mc_hull.in_hull(Y + off, P + off).any())
for seed, shape in [(40, (400, 40)), (3, (60, 12)), (9, (2000, 6)), (11, (50, 50))]:
    X = np.random.default_rng(seed).standard_normal(shape)
    for tol in (1e-16, 1e-18, 1e-12):
        def f():
            dec = mc_hull.decide(X, X, tol=tol)
            return bool((dec.status == 1).all()) if (dec.status != 0).all() else False
        case(f)
for m in (1e307, 5e307 / 3, 1e-300, 1e300, 1.4e308):
    Xs = np.random.default_rng(2).standard_normal((100, 5)) / 4
    Q = np.vstack([pushed(Xs, 1e-3), 0.1 * Xs[:5]])
    case(lambda: mc_hull.in_hull(Xs * m, Q * m).tolist() == [False] * 4 + [True] * 5)
for bad in ("1e-9", None, 1e-9 + 0j, True):
    case(lambda: (mc_hull.decide(np.eye(3), np.eye(3), tol=bad), False)[1])
case(lambda: (mc_hull.in_hull(np.eye(3), np.eye(3)[:1] + 1j), False)[1])
print(json.dumps(res))
