"""The ``dctutor`` command line: ``python -m dctutor COMMAND ...`` (or ``dctutor COMMAND``).

One function per subcommand registers its parser (``add_<name>(subparsers)``) and one runs it
(``cmd_<name>(args) -> exit code``); :data:`COMMANDS` lists the registrars, so adding a command
is adding two functions and one entry.

Commands:

* ``student-notebooks OUT_DIR`` — every chapter notebook with its solutions removed and its
  exercise cells blanked (:mod:`dctutor.student`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


# -- student-notebooks ------------------------------------------------------------------------
def add_student_notebooks(subparsers) -> None:
    p = subparsers.add_parser(
        "student-notebooks",
        help="write every chapter notebook without its solutions, exercises blanked",
        description="Write a copy of every chapter notebook (book/NN_name.ipynb, or converted "
        "from book/NN_name.md) into OUT_DIR with the {solution} blocks removed and the code "
        "cells tagged 'exercise' blanked to '# your code here'. The copies run top to bottom.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="folder to write into "
                   "(created if missing; existing notebooks of the same name are replaced)")
    p.add_argument("--book", type=Path, default=Path("book"),
                   help="the book's chapter folder (default: %(default)s)")
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
COMMANDS = [add_student_notebooks]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dctutor", description="The command line of the book 'Deep clustering, from PCA "
        "to IIC'.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"dctutor {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
