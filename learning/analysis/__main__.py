"""``python -m learning.analysis COMMAND ...``: figures and tables from run directories."""

import sys

from learning.analysis.cli import PlotError, parse_arguments, report

if __name__ == "__main__":
    try:
        parse_arguments(sys.argv[1:])  # --help and bad arguments answer before the plotting libraries load
    except PlotError as error:
        sys.exit(report(error))
    from learning.analysis.plots import main

    sys.exit(main(sys.argv[1:]))
