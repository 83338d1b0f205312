"""``python -m learning.analysis COMMAND ...``: figures and tables from run directories."""

import sys

from learning.analysis.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
