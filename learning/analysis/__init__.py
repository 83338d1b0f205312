"""Analysis of finished runs: loading a run (runs.py), statistics, plots. ``python -m learning.analysis``."""
