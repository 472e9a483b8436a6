"""The ``dctutor`` command line: ``python -m dctutor COMMAND ...`` (or ``dctutor COMMAND``).

One function per subcommand registers its parser (``add_<name>(subparsers)``) and one runs it
(``cmd_<name>(args) -> exit code``); :data:`COMMANDS` lists the registrars, so adding a command
is adding two functions and one entry.

Commands:

* ``run METHOD --dataset NAME`` — rerun one method of the book over one or more seeds and print
  ACC/NMI/ARI (:mod:`dctutor.bench`); ``--json PATH`` writes every run.
* ``bench`` — every method over a few seeds on both datasets: a results table (CSV, Markdown,
  JSON) with wall times and throughput, the source of the book's results chapter.
* ``notebooks`` — regenerate the reader notebooks ``notebooks/NN_name.ipynb`` from the chapters'
  MyST sources (:mod:`dctutor.reader`); ``--check`` only says whether they are in sync.
* ``student-notebooks OUT_DIR`` — every reader notebook with its solutions removed and its
  exercise cells blanked (:mod:`dctutor.student`).

Bad input (an unknown method or dataset, ``--seeds 0``, a missing dataset, an unavailable
device) exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .config import PROFILES


class UsageError(Exception):
    """Bad input found after parsing: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (no usage dump), exit status 2."""

    def error(self, message):  # noqa: D401 - argparse's hook
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _int_at_least(minimum: int, what: str):
    """An argparse ``type`` for integers ≥ ``minimum``, with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1, "positive")
_seed = _int_at_least(0, "non-negative")


def _resolve(profile_arg: str | None, device_arg: str | None):
    """The profile and device a command runs with, or a :class:`UsageError`."""
    from . import config

    try:
        profile = profile_arg or config.profile()
        device = config.device(device_arg)
    except ValueError as err:
        raise UsageError(_one_line(err)) from None
    return profile, device


def _prepare(dataset: str, profile: str, device, download: bool):
    from . import bench

    try:
        return bench.prepare(dataset, profile, device, download=download)
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(_one_line(err)) from None


# -- run --------------------------------------------------------------------------------------
def add_run(subparsers) -> None:
    from .bench import METHODS
    from .data import NAMES

    p = subparsers.add_parser(
        "run", help="rerun one method on one dataset over one or more seeds",
        description="Run METHOD on the whole of DATASET (at most 5,000 images in the quick "
        "profile) and print ACC/NMI/ARI per seed and mean ± std over seeds.")
    p.add_argument("method", metavar="METHOD", choices=METHODS,
                   help="one of: " + ", ".join(METHODS))
    p.add_argument("--dataset", required=True, choices=NAMES, metavar="NAME",
                   help="one of: " + ", ".join(NAMES))
    p.add_argument("--profile", choices=PROFILES,
                   help="schedules to use (default: $DCTUTOR_PROFILE, else full on CUDA, quick otherwise)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_seed, default=None, help="one run with this seed (default 0)")
    seeds.add_argument("--seeds", type=_positive_int, default=None, metavar="N",
                       help="N runs with seeds 0 … N-1")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every run to PATH")
    p.add_argument("--no-download", action="store_true", help="fail rather than download a missing dataset")
    p.set_defaults(func=cmd_run)



def cmd_run(args) -> int:
    from . import bench

    profile, device = _resolve(args.profile, args.device)
    seeds = list(range(args.seeds)) if args.seeds else [args.seed if args.seed is not None else 0]
    prepared = _prepare(args.dataset, profile, device, not args.no_download)
    rows, cache = [], {}
    for seed in seeds:
        row = bench.run(args.method, prepared, seed, cache)
        rows.append(row)
        print(bench.summary_line(row), flush=True)
    if len(rows) > 1:
        parts = []
        for key in ("acc", "nmi", "ari"):
            m, s = bench.mean_std([r[key] for r in rows])
            parts.append(f"{key.upper()} {m:.4f} ± {s:.4f}")
        print(f"{args.method} on {args.dataset}, {len(rows)} seeds: " + "  ".join(parts))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"command": args.command_line,
                   "runs": rows, "summary": bench.summarise(rows)}
        args.json.write_text(json.dumps(payload, indent=1, default=bench._jsonable))
    return 0


# -- bench ------------------------------------------------------------------------------------
def add_bench(subparsers) -> None:
    from .bench import METHODS

    p = subparsers.add_parser(
        "bench", help="every method over a few seeds: a results table with times",
        description="Run every method over a few seeds on MNIST and Fashion-MNIST and write "
        "summary.csv, summary.md and runs.json (mean ± std of ACC/NMI/ARI, wall time per run, "
        "training throughput, device and versions). Resumable: runs.json is rewritten after "
        "every finished run, and runs already in it are not repeated.")
    p.add_argument("--profile", choices=PROFILES, help="as for run")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default: results/<profile>)")
    p.add_argument("--seeds", type=_positive_int, default=None, metavar="N",
                   help="seeds per method (default: 2 in quick, 3 in laptop, 5 in full)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), metavar="M")
    p.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                   help="default: mnist-5k and fashion-mnist in quick, mnist and fashion-mnist otherwise")
    p.add_argument("--device", default=None, help="as for run")
    p.add_argument("--no-download", action="store_true", help="fail rather than download")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from . import bench
    from .data import NAMES

    profile, device = _resolve(args.profile, args.device)
    datasets = args.datasets or (["mnist-5k", "fashion-mnist"] if profile == "quick"
                                 else ["mnist", "fashion-mnist"])
    for name in datasets:
        if name not in NAMES:
            raise UsageError(f"unknown dataset {name!r}; choose from {', '.join(NAMES)}")
    n_seeds = args.seeds or {"quick": 2, "laptop": 3}.get(profile, 5)
    out = args.out or Path("results") / profile
    prepared = [_prepare(name, profile, device, not args.no_download) for name in datasets]
    try:
        rows, paths = bench.run_resumable(prepared, args.methods, n_seeds, out, args.command_line,
                                          log=lambda line: print(line, flush=True))
    except ValueError as err:
        raise UsageError(str(err)) from err
    print(bench.markdown_table(bench.summarise(rows)))
    print("wrote " + ", ".join(str(v) for v in paths.values()))
    return 0


# -- study ------------------------------------------------------------------------------------
def add_study(subparsers) -> None:
    from .studies import STUDIES

    p = subparsers.add_parser(
        "study", help="repeat a chapter's comparison over several seeds (resumable)",
        description="Run one of the chapters' multi-seed studies and write one JSON file per "
        "seed into results/studies-<profile>/<study>/ as each seed finishes; seeds already "
        "there are skipped. The chapters load these files.")
    p.add_argument("study", choices=list(STUDIES), help="which study")
    p.add_argument("--profile", choices=PROFILES, help="as for run")
    p.add_argument("--seeds", type=_positive_int, default=3, metavar="N",
                   help="seeds 0 … N−1 (default: %(default)s)")
    p.add_argument("--root", type=Path, default=None, metavar="DIR",
                   help="results folder (default: the repository's results/)")
    p.add_argument("--device", default=None, help="as for run")
    p.set_defaults(func=cmd_study)


def cmd_study(args) -> int:
    from . import studies

    profile, device = _resolve(args.profile, args.device)
    studies.run(args.study, args.seeds, profile, device, args.root,
                log=lambda line: print(line, flush=True))
    return 0


# -- smoke --------------------------------------------------------------------------------------
def add_smoke(subparsers) -> None:
    p = subparsers.add_parser(
        "smoke", help="every code path of a profile, a handful of steps each (CPU is enough)",
        description="Run every training call of the chapters and every benchmark method with the "
        "profile's network shapes, batch sizes and augmentations on its full-size data, but with "
        "every epoch, step and subset count cut down (dctutor.smoke.CAPS); check the outputs "
        "and report schedule entries the run never read.")
    p.add_argument("--profile", choices=PROFILES, default="full")
    p.add_argument("--device", default="cpu", help="as for run (default: cpu)")
    p.set_defaults(func=cmd_smoke)


def cmd_smoke(args) -> int:
    from . import smoke

    _, device = _resolve(args.profile, args.device)
    unread = smoke.run(args.profile, device, log=lambda line: print(line, flush=True))
    missing = {k: sorted(v) for k, v in unread.items() if v}
    if missing:
        print(f"schedule entries the smoke run never read: {missing}", file=sys.stderr)
        return 1
    print(f"smoke run of the {args.profile} profile: every code path ran, every schedule entry read")
    return 0


# -- full-run -----------------------------------------------------------------------------------
def add_full_run(subparsers) -> None:
    p = subparsers.add_parser(
        "full-run", help="on a GPU: every chapter in the full profile, then the bench over seeds",
        description="Print the estimated time (seconds per step measured here × the schedule's "
        "steps), execute every chapter notebook in the full profile recording wall time and peak "
        "GPU memory, then run every method over several seeds on MNIST and Fashion-MNIST. "
        "Resumable. --scale smoke runs the same code paths with every count cut down, on a CPU.")
    p.add_argument("--scale", choices=("full", "smoke"), default="full",
                   help="smoke: a few steps of everything, written under _build/full-run-smoke")
    p.add_argument("--seeds", type=_positive_int, default=None, metavar="N",
                   help="bench seeds per method and dataset (default: 5; 1 at smoke scale)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="default: results/ (smoke: _build/full-run-smoke/)")
    p.add_argument("--device", default=None, help="as for run")
    p.add_argument("--budget", type=float, default=12.0, metavar="MIN",
                   help="minutes the estimate is compared with (default: %(default)s)")
    p.add_argument("--no-chapters", action="store_true", help="skip the chapters")
    p.add_argument("--no-bench", action="store_true", help="skip the benchmark")
    p.add_argument("--estimate-only", action="store_true", help="print the estimate and stop")
    p.set_defaults(func=cmd_full_run)


def cmd_full_run(args) -> int:
    from . import fullrun

    if args.device is not None:
        from . import config

        try:
            config.device(args.device)
        except ValueError as err:
            raise UsageError(str(err)) from err
    seeds = args.seeds or (1 if args.scale == "smoke" else 5)
    only_estimate = args.estimate_only
    return fullrun.main(scale=args.scale, seeds=seeds, out=args.out, device_name=args.device,
                        do_chapters=not (args.no_chapters or only_estimate),
                        do_bench=not (args.no_bench or only_estimate), budget_min=args.budget,
                        command=args.command_line, log=lambda line: print(line, flush=True))


# -- notebooks ---------------------------------------------------------------------------------
def add_notebooks(subparsers) -> None:
    p = subparsers.add_parser(
        "notebooks", help="regenerate the reader notebooks (notebooks/) from book/NN_name.md",
        description="Write notebooks/NN_name.ipynb for every chapter book/NN_name.md: the "
        "notebook Colab opens and the site offers for download, in plain Jupyter Markdown "
        "(no MyST), without outputs. Run it from the repository root after editing a chapter "
        "(or a function a chapter includes with {literalinclude}).")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if a notebook is missing or out of date")
    p.add_argument("--root", type=Path, default=Path("."),
                   help="the repository root (default: the current folder)")
    p.add_argument("chapters", nargs="*", metavar="NN",
                   help="only the chapters whose file name starts with these (default: all)")
    p.set_defaults(func=cmd_notebooks)


def cmd_notebooks(args) -> int:
    from . import reader

    if not (args.root / "book").is_dir() or not (args.root / "_toc.yml").is_file():
        print(f"dctutor notebooks: {args.root.resolve()} is not the repository root "
              "(no book/ or _toc.yml)", file=sys.stderr)
        return 2
    try:
        results = reader.write_notebooks(root=args.root, check=args.check,
                                         only=args.chapters or None)
    except reader.ConversionError as err:
        print(f"dctutor notebooks: {err}", file=sys.stderr)
        return 2
    changed = [path for path, was_changed in results if was_changed]
    for path in changed:
        print(f"{'out of date' if args.check else 'written'}: {path}")
    if args.check and changed:
        print("the reader notebooks are out of sync with book/*.md: run "
              "python -m dctutor notebooks", file=sys.stderr)
        return 1
    print(f"{len(results)} reader notebook(s), {len(changed)} "
          f"{'out of date' if args.check else 'changed'}")
    return 0


# -- student-notebooks ------------------------------------------------------------------------
def add_student_notebooks(subparsers) -> None:
    p = subparsers.add_parser(
        "student-notebooks",
        help="write every chapter notebook without its solutions, exercises blanked",
        description="Write a copy of every reader notebook (notebooks/NN_name.ipynb, made by "
        "'python -m dctutor notebooks') into OUT_DIR with the solutions removed and the code "
        "cells tagged 'exercise' blanked to '# your code here'. The copies run top to bottom.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="folder to write into "
                   "(created if missing; existing notebooks of the same name are replaced)")
    p.add_argument("--from", "--book", dest="book", type=Path, default=Path("notebooks"),
                   help="the folder of chapter notebooks (NN_name.ipynb) or MyST sources "
                   "(NN_name.md) to start from (default: %(default)s, the reader notebooks)")
    p.set_defaults(func=cmd_student_notebooks)


def cmd_student_notebooks(args) -> int:
    from . import student

    try:
        written = student.write_student_notebooks(args.out_dir, args.book)
    except ValueError as err:
        print(f"dctutor student-notebooks: {err}", file=sys.stderr)
        return 2
    for source, target, report in written:
        print(f"{source} -> {target}: {report}")
        for note in report.notes:
            print(f"  warning: {note}", file=sys.stderr)
    print(f"{len(written)} student notebook(s) in {args.out_dir}")
    return 0


# -- the parser -------------------------------------------------------------------------------
COMMANDS = [add_run, add_bench, add_study, add_smoke, add_full_run, add_notebooks,
            add_student_notebooks]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dctutor", description="The command line of the book 'Deep clustering, from PCA "
        "to IIC'.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"dctutor {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = "python -m dctutor " + shlex.join(argv)
    try:
        return args.func(args)
    except UsageError as err:
        print(f"dctutor {args.command}: error: {err}", file=sys.stderr)
        return 2
