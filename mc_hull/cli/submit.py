"""``mc-hull submit | status | logs | stop``: run a spec as a Ray job on a cluster and follow it.

One module registers the four subcommands (they share ``--address``).
"""

from __future__ import annotations

import sys

from ..errors import SpecError
from .args import _location
from ..spec import Panel, is_auto, load_panels, load_preset, load_toml, panel_mappings, preset_names

ADDRESS_HELP = ("Ray job API URL (the dashboard port), default $RAY_API_SERVER_ADDRESS or "
                "http://127.0.0.1:8265; the token comes from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH "
                "or ~/.ray/auth_token")


def register(sub) -> None:
    p = sub.add_parser("submit", help="submit a spec to a Ray cluster as a Ray job",
                       description="Submit SPEC.toml as a Ray job running `mc-hull run`; the job id "
                       "is derived from the spec hash and --out, so a spec is never submitted twice "
                       "by accident.")
    p.add_argument("spec", nargs="?", metavar="SPEC.toml", help="experiment spec (TOML), as for mc-hull run")
    p.add_argument("--preset", metavar="NAME", help=f"a built-in spec; one of: {', '.join(preset_names())}")
    p.add_argument("--address", help=ADDRESS_HELP)
    p.add_argument("--out", default="results", type=_location("--out"),
                   help="results location seen from the cluster: an s3://... URI, or a path on a "
                   "filesystem every node shares (default ./results, made absolute)")
    p.add_argument("--working-dir", default=".",
                   help="directory uploaded as the job's working directory (default .)")
    p.add_argument("--no-working-dir", action="store_true",
                   help="upload nothing: the cluster image provides mc-hull")
    p.add_argument("--no-wait", action="store_true", help="return after submitting")
    p.add_argument("--retry", action="store_true",
                   help="if this spec's job failed or was stopped, submit a new attempt (it resumes)")
    p.set_defaults(func=main_submit)
    for name, helptext, func in (("status", "show a submitted job's status", main_status),
                                 ("logs", "print a submitted job's log", main_logs),
                                 ("stop", "stop a submitted job (committed shards are kept)", main_stop)):
        q = sub.add_parser(name, help=helptext, description=helptext)
        q.add_argument("job", metavar="ID", help="submission id printed by mc-hull submit")
        q.add_argument("--address", help=ADDRESS_HELP)
        q.set_defaults(func=func)


def load_spec(args):
    """What ``mc-hull run`` would run for SPEC.toml or --preset, validated: a Spec, or a list of Panels.

    ``sizes = "auto"`` is resolved here (exact curve, or a small local pilot pass) and shipped as a grid.
    """
    for flag, value in (("SPEC.toml", args.spec), ("--preset", args.preset)):
        if value is not None and not value.strip():   # '' is not "no spec": it names nothing
            raise SpecError(f"{flag}: empty")
    if args.spec and args.preset:
        raise SpecError("give either SPEC.toml or --preset, not both")
    if not args.spec and not args.preset:
        raise SpecError("give SPEC.toml or --preset")
    data = dict(load_toml(args.spec) if args.spec else load_preset(args.preset))
    if args.preset == "paper-digits" and not args.spec:
        raise SpecError("preset: paper-digits is a hull-test sweep: run it with mc-hull hull-test --preset paper-digits")
    panels = load_panels(_without_auto(data))
    resolved = []
    for panel, mapping in zip(panels, panel_mappings(data)):
        spec = panel.spec
        if is_auto(mapping[2].get("sizes")):
            from ..adaptive import resolve_auto_sizes

            spec = resolve_auto_sizes(spec, backend="serial")
        resolved.append(Panel(panel.name, panel.title, spec))
    return resolved[0].spec if "panels" not in data else resolved


def _without_auto(data: dict) -> dict:
    """The mapping with ``sizes = "auto"`` left out (resolved after validation), in every panel too."""
    def strip(m):
        return {k: v for k, v in m.items() if not (k == "sizes" and is_auto(v))}

    out = strip(data)
    if isinstance(data.get("panels"), list):
        out["panels"] = [strip(p) if isinstance(p, dict) else p for p in data["panels"]]
    return out


def main_submit(args) -> int:
    from ..submit import canonical_out, submit

    spec = load_spec(args)
    out = canonical_out(args.out)
    if "://" not in out:
        print(f"mc-hull: note: --out {out} is a path on the cluster's machines: fine on one node or a "
              "shared filesystem; use s3://... otherwise", file=sys.stderr)
    job, status = submit(spec, out, address=args.address,
                         working_dir=None if args.no_working_dir else args.working_dir,
                         wait=not args.no_wait, retry=args.retry)
    print(job)
    return 0 if status in ("SUCCEEDED", "PENDING", "RUNNING") else 1


def main_status(args) -> int:
    from ..submit import status

    print(status(args.job, args.address))
    return 0


def main_logs(args) -> int:
    from ..submit import logs

    sys.stdout.write(logs(args.job, args.address))
    return 0


def main_stop(args) -> int:
    from ..submit import stop

    if stop(args.job, args.address):
        print(f"mc-hull: stop requested for {args.job}; committed shards are kept, `mc-hull submit "
              "--retry` resumes", file=sys.stderr)
    else:
        print(f"mc-hull: {args.job} had already ended", file=sys.stderr)
    return 0
