"""Grids of runs (methods x environments x seeds): the paper's recipes, grid files, the Ray runner."""
