"""``mc-hull submit | status | logs | stop``: run a spec as a Ray job on a cluster and follow it.

One module registers the four subcommands (they share ``--address``).
"""

from __future__ import annotations

import sys

from ..distributed import submit as jobs
from ..errors import SpecError
from ..store import is_uri
from .args import _location
from .specs import add_spec_arguments, assemble, is_multi_panel


ADDRESS_HELP = ("Ray job API URL (the dashboard port), default $RAY_API_SERVER_ADDRESS or "
                "http://127.0.0.1:8265; the token comes from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH "
                "or ~/.ray/auth_token")


def register(sub) -> None:
    p = sub.add_parser("submit", help="submit a spec to a Ray cluster as a Ray job",
                       description="Submit a spec (SPEC.toml, a --preset, --spec-json or flags, exactly as "
                       "for mc-hull run) as a Ray job running `mc-hull run`; the job id is derived from "
                       "the spec hash and --out, so a spec is never submitted twice by accident.")
    add_spec_arguments(p)
    p.add_argument("--address", help=ADDRESS_HELP)
    p.add_argument("--out", default="results", type=_location("--out"),
                   help="results location seen from the cluster: an s3://... URI, or a path on a "
                   "filesystem every node shares (default ./results, made absolute)")
    p.add_argument("--working-dir", default=".",
                   help="directory uploaded as the job's working directory (default .)")
    for flag, text in (("--no-working-dir", "upload nothing: the cluster image provides mc-hull"),
                       ("--no-wait", "return after submitting"),
                       ("--retry", "if this spec's job failed or was stopped, submit a new attempt (it resumes)")):
        p.add_argument(flag, action="store_true", help=text)
    p.set_defaults(func=main_submit)
    for name, helptext, func in (("status", "show a submitted job's status", main_status),
                                 ("logs", "print a submitted job's log", main_logs),
                                 ("stop", "stop a submitted job (committed shards are kept)", main_stop)):
        q = sub.add_parser(name, help=helptext, description=helptext)
        q.add_argument("job", metavar="ID", help="submission id printed by mc-hull submit")
        q.add_argument("--address", help=ADDRESS_HELP)
        q.set_defaults(func=func)


def load_spec(args):
    """What ``mc-hull run`` runs for these arguments (:func:`mc_hull.cli.specs.assemble`): a Spec, or
    the list of Panels of a multi-panel file; ``sizes = "auto"`` resolved here (a pilot pass runs
    in this process) and shipped as a grid."""
    if args.preset == "paper-digits" and not args.spec:
        raise SpecError("preset: paper-digits is a hull-test sweep: run it with mc-hull hull-test --preset paper-digits")
    panels = assemble(args)
    return panels if is_multi_panel(panels) else panels[0].spec


def main_submit(args) -> int:
    spec = load_spec(args)
    out = jobs.canonical_out(args.out)
    cl = jobs.client(args.address)    # an unreachable job API is the one line said, before any note
    if not is_uri(out):
        print(f"mc-hull: note: --out {out} is a path on the cluster's machines: fine on one node or a "
              "shared filesystem; use s3://... otherwise", file=sys.stderr)
    job, status = jobs.submit(spec, out, address=args.address,
                              working_dir=None if args.no_working_dir else args.working_dir,
                              wait=not args.no_wait, retry=args.retry, cl=cl)
    print(job)
    return 0 if status in ("SUCCEEDED", "PENDING", "RUNNING") else 1


def main_status(args) -> int:
    print(jobs.status(args.job, args.address))
    return 0


def main_logs(args) -> int:
    sys.stdout.write(jobs.logs(args.job, args.address))
    return 0


def main_stop(args) -> int:
    if jobs.stop(args.job, args.address):
        print(f"mc-hull: stop requested for {args.job}; committed shards are kept, `mc-hull submit "
              "--retry` resumes", file=sys.stderr)
    else:
        print(f"mc-hull: {args.job} had already ended", file=sys.stderr)
    return 0
