"""`ssn3d studies run|refresh`: the notebook batch (see ssn3dlib.studies.batch).

  ssn3d studies run --profile cpu                 every numbered notebook, skipping up-to-date ones
  ssn3d studies run --profile smoke --only 02 03  a subset, by number or stem
  ssn3d studies refresh [NAME ...]                stored outputs of the sources from a smoke run
  ssn3d studies report --profile cpu              reports/REPORT.md + .html from the studies' metrics

A successful `run` over the repository's notebooks ends by regenerating the report.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..paths import PROFILES


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run_p = sub.add_parser("run", help="execute the numbered notebooks into reports/runs/<profile>/")
    run_p.add_argument("--profile", required=True, choices=PROFILES,
                       help="parameter set: smoke (notebook defaults), cpu (make report), extended (the larger "
                            "committed designs of notebooks 03-05), full (the paper's scale, GPU)")
    run_p.add_argument("--only", nargs="+", action="extend", default=[], metavar="NAME",
                       help="run only these notebooks (stems such as 02_amber_abstract, or numbers)")
    run_p.add_argument("--force", action="store_true", help="rerun notebooks that are up to date")
    run_p.add_argument("--dry-run", action="store_true", help="list what would run and why, run nothing")
    refresh_p = sub.add_parser("refresh", help="regenerate the sources' stored outputs from a smoke run "
                                                "(executes into reports/runs/smoke/, then copies back)")
    refresh_p.add_argument("names", nargs="*", metavar="NAME", help="notebooks to refresh (default: all)")
    report_p = sub.add_parser("report", help="assemble REPORT.md and REPORT.html from the studies' metrics.json")
    report_p.add_argument("--profile", default="cpu", choices=PROFILES)
    for p in (run_p, refresh_p):
        p.add_argument("--notebooks", type=Path, default=None,
                       help="folder of numbered notebooks (default: the repository's notebooks/)")
    return parser


def run(args) -> int:
    # BatchError, CheckoutRequired (a wheel install has no notebooks) and NotebookFailed are
    # UserErrors: cli.main prints them (exit 2; 1 for a failed notebook).
    return {"run": _run, "refresh": _refresh, "report": _report}[args.action](args)


def _run(args) -> int:
    from ..studies.batch import plan_batch, run_batch, runs_dir, summary_table

    if args.dry_run:
        for plan in plan_batch(args.profile, args.notebooks, args.only, args.force):
            print(f"{plan.notebook.stem}: {'skip (up to date)' if plan.up_to_date else 'run: ' + plan.reason}")
        return 0
    result = run_batch(args.profile, args.notebooks, args.only, args.force)
    print(summary_table(result))
    print(f"executed notebooks and batch.json in {runs_dir(args.profile)}")
    if result.failure:
        stems = [r.notebook for r in result.records if r.status in ("failed", "not run")]
        print(f"error: {result.failure}\n  after fixing it, resume with: ssn3d studies run "
              f"--profile {args.profile} (up-to-date notebooks are skipped; "
              f"--only {' '.join(stems)} runs just the rest)", file=sys.stderr)
        return 1
    if args.notebooks is None:      # the study's own notebooks: their claims make the report
        _report(args)
    return 0


def _report(args) -> int:
    from ..reporting.report import write_report

    for path in write_report(args.profile):
        print(f"wrote {path}")
    return 0


def _refresh(args) -> int:
    from ..studies.batch import refresh_notebooks

    refreshed = refresh_notebooks(args.names, args.notebooks)
    print(f"refreshed the stored outputs of {len(refreshed)} notebook(s): "
          + ", ".join(p.name for p in refreshed))
    return 0
