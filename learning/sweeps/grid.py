"""A grid of runs: experiments (with their flags) x environments x seeds, and each run's command line.

A grid is a named recipe (learning/sweeps/recipes.py) or a small YAML/TOML file:

    name: demo                      # optional (default: the file name)
    seeds: 3                        # 3 -> seeds 1, 2, 3; or a list [1, 2]
    envs: [JacoReachMT5-v1]
    n_epochs: 100                   # optional; or {env: epochs}; default: each env's preset (docs/fidelity.md#presets)
    overrides: {wandb: false}       # flags added to every run
    records: records/demo           # optional: the runs' records folder for git (learning/sweeps/records.py),
                                    # relative to this file
    experiments:
      - label: Separated + QMP      # optional; default: the experiment name
        experiment: qmp_dnc
        flags: {qmp_own_policy_prob: 0.2}
        env_flags: {MetaWorldMT10-v2: {qmp_own_policy_prob: 0.7}}
        envs: [...]                 # optional: a subset of the grid's envs
        n_epochs: 50                # optional
        distillations: 10           # optional (DnC): --distillation_period = n_epochs // 10

Every run's directory is deterministic: ``SWEEP_DIR/runs/{experiment}_{env}_{slug}_{seed}``
(run.py's own naming with ``--log_dir SWEEP_DIR/runs --name SLUG``, the slug made from the label),
so re-running a sweep finds its runs again. ``--budget_scale`` multiplies every run's epochs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from learning.training.run_guard import write_atomically

RUNS_FOLDER = "runs"
MANIFEST_FILE = "sweep.json"


class GridError(ValueError):
    """A grid cannot be read or expanded; one-line message."""


@dataclass(frozen=True)
class ExperimentSpec:
    """One method of a grid: an experiment name and the flags that make it the paper's method."""

    label: str
    experiment: str
    flags: dict[str, Any] = field(default_factory=dict)
    env_flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    envs: tuple[str, ...] | None = None
    n_epochs: int | None = None
    distillations: int | None = None

    @property
    def slug(self) -> str:
        return slugify(self.label)


@dataclass(frozen=True)
class Grid:
    name: str
    experiments: tuple[ExperimentSpec, ...]
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    n_epochs: int | dict[str, int] | None = None
    """One epoch count for every environment, or environment -> epochs; default: the presets."""
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    records: Path | None = None
    """The folder of the runs' records (learning/sweeps/records.py); None: none."""

    def epochs(self, spec: ExperimentSpec, env: str) -> int:
        """Epochs of ``spec`` on ``env`` before any budget scale."""
        if spec.n_epochs:
            return spec.n_epochs
        if isinstance(self.n_epochs, dict):
            return self.n_epochs.get(env) or preset_epochs(env)
        return self.n_epochs or preset_epochs(env)


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: what it is (identity flags) and how long it trains (budget)."""

    grid: str
    label: str
    slug: str
    experiment: str
    env: str
    seed: int
    flags: tuple[str, ...]
    """run.py flags that define the run (not the budget): compared when a sweep is re-run."""
    n_epochs: int
    budget_flags: tuple[str, ...] = ()
    """Flags derived from the budget (DnC's distillation period)."""

    @property
    def run_name(self) -> str:
        """run.py's run name ``{experiment}_{env}_{name}_{seed}`` (Config.run_name)."""
        return f"{self.experiment}_{self.env}_{self.slug}_{self.seed}"

    def run_dir(self, sweep_dir: Path) -> Path:
        return Path(sweep_dir) / RUNS_FOLDER / self.run_name

    def start_command(self, sweep_dir: Path, on_gpu: bool = False) -> list[str]:
        """``python run.py EXPERIMENT ...`` for a run that has no checkpoint yet."""
        return ["python", "run.py", self.experiment, *self.flags, "--log_dir", str(Path(sweep_dir) / RUNS_FOLDER),
                "--n_epochs", str(self.n_epochs), *self.budget_flags, *(["--gpu", "0"] if on_gpu else [])]

    def resume_command(self, sweep_dir: Path) -> list[str]:
        """``python run.py resume ...`` for a run with a checkpoint (extends it to ``n_epochs``)."""
        return ["python", "run.py", "resume", "--snapshot_dir", str(self.run_dir(sweep_dir)),
                "--n_epochs", str(self.n_epochs)]

    def manifest_entry(self) -> dict[str, Any]:
        return {"label": self.label, "slug": self.slug, "experiment": self.experiment, "env": self.env,
                "seed": self.seed, "flags": list(self.flags), "n_epochs": self.n_epochs, "grid": self.grid}


def slugify(label: str) -> str:
    """``"Separated + QMP"`` -> ``"separated-qmp"`` (a run-name and W&B-tag safe form)."""
    slug = re.sub(r"[^a-z0-9.]+", "-", label.lower().replace("+", " ")).strip("-")
    if not slug:
        raise GridError(f"label {label!r} has no letters or digits")
    return slug


def flag_tokens(flags: dict[str, Any]) -> list[str]:
    """``{"hidden_sizes": [512, 512], "use_pc_grad": True}`` -> ``--hidden_sizes 512 512 --use_pc_grad True``."""
    tokens: list[str] = []
    for name, value in flags.items():
        if name in ("n_epochs", "log_dir", "name", "seed", "env", "gpu", "snapshot_dir"):
            raise GridError(f"flag {name!r} is set by the sweep (use the n_epochs/envs/seeds keys of the grid)")
        values = value if isinstance(value, (list, tuple)) else [value]
        tokens += [f"--{name}", *(str(item) for item in values)]
    return tokens


def preset_epochs(env: str) -> int:
    """The environment's preset epoch count (docs/fidelity.md#presets), else run.py's default."""
    from learning.training.config import ENV_PRESETS, FLAG_BY_NAME

    return int(ENV_PRESETS.get(env, {}).get("n_epochs", FLAG_BY_NAME["n_epochs"].default))


def scaled_epochs(epochs: int, budget_scale: float) -> int:
    """``epochs * budget_scale`` rounded, at least 1."""
    return max(1, round(epochs * budget_scale))


def check_flags(spec: ExperimentSpec, env: str, flags: list[str], epochs: int, budget_flags: tuple[str, ...]) -> None:
    """Parse a run's command line as run.py will, so a misspelt or misplaced flag stops the sweep before
    any run starts. Raises GridError naming the method and environment."""
    from learning.training.config import ConfigError, parse_command_line

    try:
        parse_command_line([spec.experiment, "--env", env, *flags, "--n_epochs", str(epochs), *budget_flags])
    except ConfigError as error:
        raise GridError(f"{spec.label} on {env}: {error}") from None


def expand(grid: Grid, budget_scale: float = 1.0, seeds: tuple[int, ...] | None = None) -> list[RunSpec]:
    """Every run of the grid, experiments outermost, then environments, then seeds."""
    from learning.training.config import MAX_SEED

    if not 0 < budget_scale < float("inf"):
        raise GridError(f"--budget_scale must be a positive finite number, got {budget_scale}")
    bad_seed = next((seed for seed in seeds or grid.seeds if not 0 <= seed <= MAX_SEED), None)
    if bad_seed is not None:
        raise GridError(f"seeds must be in [0, {MAX_SEED}] (run.py's --seed), got {bad_seed}")
    runs = []
    for spec in grid.experiments:
        for env in grid.envs if spec.envs is None else spec.envs:
            flags = {**spec.flags, **spec.env_flags.get(env, {}), **grid.overrides}
            epochs = scaled_epochs(grid.epochs(spec, env), budget_scale)
            budget_flags: tuple[str, ...] = ()
            if spec.distillations:
                budget_flags = ("--distillation_period", str(max(1, epochs // spec.distillations)))
            tokens = flag_tokens(flags)
            check_flags(spec, env, tokens, epochs, budget_flags)
            for seed in seeds or grid.seeds:
                identity = ("--env", env, "--seed", str(seed), "--name", spec.slug, *tokens)
                runs.append(RunSpec(grid.name, spec.label, spec.slug, spec.experiment, env, seed, identity, epochs,
                                    budget_flags))
    names = [run.run_name for run in runs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise GridError(f"two runs share a directory ({duplicates[0]}); give the experiments distinct labels")
    return runs


class _Labelled(Protocol):
    @property
    def label(self) -> str: ...


LabelledT = TypeVar("LabelledT", bound=_Labelled)


def labelled(items: Sequence[LabelledT], labels: Sequence[str]) -> tuple[list[LabelledT], str | None, list[str]]:
    """The items (anything with a ``label``) of ``labels``, in that order of labels; the first label no item
    has (None when every label is known); and the items' labels in their order."""
    label_of = [item.label for item in items]
    known = list(dict.fromkeys(label_of))
    unknown = next((label for label in labels if label not in known), None)
    chosen = [item for label in dict.fromkeys(labels) for item, own in zip(items, label_of) if own == label]
    return chosen, unknown, known


def select_methods(runs: list[RunSpec], labels: Sequence[str]) -> list[RunSpec]:
    """The runs of the methods ``labels`` (a grid's labels), in that order of methods; raises GridError
    naming the grid's labels when one is unknown."""
    chosen, unknown, known = labelled(runs, labels)
    if unknown is not None:
        raise GridError(f"no method {unknown!r} in the grid; its methods: {', '.join(map(repr, known))}")
    return chosen


RUN_ORDERS = ("seed", "method")


def in_order(runs: list[RunSpec], order: str) -> list[RunSpec]:
    """The runs in the order a sweep starts them: ``seed`` puts every method's run of the first seed before
    any run of the second (a grid cut short still compares every method), ``method`` keeps the grid's order
    (every seed of the first method first). Stable: within a seed, the grid's order of methods and envs."""
    if order == "method":
        return list(runs)
    if order != "seed":
        raise GridError(f"unknown run order {order!r}; the orders: {', '.join(RUN_ORDERS)}")
    position = {seed: index for index, seed in enumerate(dict.fromkeys(run.seed for run in runs))}
    return sorted(runs, key=lambda run: position[run.seed])


# ----------------------------------------------------------------------------------------- grid files
def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise GridError(f"{where}: seeds must be a count or a list of integers")
    if isinstance(value, int):
        if value <= 0:
            raise GridError(f"{where}: seeds must be positive, got {value}")
        return tuple(range(1, value + 1))
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise GridError(f"{where}: seeds must be a count or a non-empty list of integers, got {value!r}")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GridError(f"{where} must be a mapping of flag names to values, got {value!r}")
    return {str(key): value for key, value in value.items()}


def _positive_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise GridError(f"{where} must be a positive integer, got {value!r}")
    return value


def _epochs(value: Any) -> int | dict[str, int] | None:
    if isinstance(value, dict):
        return {str(env): _positive_int(epochs, f"n_epochs.{env}") for env, epochs in value.items()}  # type: ignore[misc]
    return _positive_int(value, "n_epochs")


def _string_list(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise GridError(f"{where} must be a non-empty list of environment ids")
    return tuple(value)


def grid_from_dict(data: Any, default_name: str) -> Grid:
    """Validate a parsed YAML/TOML grid; raises GridError naming the bad key."""
    if not isinstance(data, dict):
        raise GridError("a grid file must hold a mapping with at least 'envs' and 'experiments'")
    known = {"name", "description", "seeds", "envs", "n_epochs", "overrides", "experiments", "records"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise GridError(f"unknown grid key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    envs = _string_list(data.get("envs"), "envs")
    if envs is None:
        raise GridError("the grid needs 'envs', a list of environment ids")
    entries = data.get("experiments")
    if not isinstance(entries, list) or not entries:
        raise GridError("the grid needs 'experiments', a non-empty list")
    experiments = []
    for index, entry in enumerate(entries):
        where = f"experiments[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("experiment"), str):
            raise GridError(f"{where} needs an 'experiment' name")
        extra = sorted(set(entry) - {"label", "experiment", "flags", "env_flags", "envs", "n_epochs", "distillations"})
        if extra:
            raise GridError(f"{where}: unknown key {extra[0]!r}")
        env_flags = {str(env): _mapping(flags, f"{where}.env_flags.{env}")
                     for env, flags in _mapping(entry.get("env_flags"), f"{where}.env_flags").items()}
        experiments.append(ExperimentSpec(
            label=str(entry.get("label", entry["experiment"])), experiment=entry["experiment"],
            flags=_mapping(entry.get("flags"), f"{where}.flags"), env_flags=env_flags,
            envs=_string_list(entry.get("envs"), f"{where}.envs"),
            n_epochs=_positive_int(entry.get("n_epochs"), f"{where}.n_epochs"),
            distillations=_positive_int(entry.get("distillations"), f"{where}.distillations")))
    return Grid(name=str(data.get("name", default_name)), experiments=tuple(experiments), envs=envs,
                seeds=_seeds(data.get("seeds", 1), "seeds"),
                n_epochs=_epochs(data.get("n_epochs")),
                overrides=_mapping(data.get("overrides"), "overrides"), description=str(data.get("description", "")),
                records=_records(data.get("records")))


def _records(value: Any) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise GridError("'records' must be a folder path")
    return Path(value)


def load_grid_file(path: Path) -> Grid:
    """A ``.yaml``/``.yml``/``.toml`` grid file. Raises GridError."""
    if not path.is_file():
        raise GridError(f"grid file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise GridError(f"{path}: not valid TOML ({str(error).splitlines()[0]})") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise GridError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    grid = grid_from_dict(data, path.stem)
    if grid.records is not None and not grid.records.is_absolute():
        grid = dataclasses.replace(grid, records=path.parent / grid.records)
    return grid


# ----------------------------------------------------------------------------------------- manifest
def read_manifest(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """Run name -> manifest entry of every run a sweep in ``sweep_dir`` has planned."""
    path = Path(sweep_dir) / MANIFEST_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("runs", {})


@contextlib.contextmanager
def manifest_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created if missing) while its manifest is read, changed and
    written: two sweeps sharing a folder (two drivers on one Ray cluster) never drop each other's entries.
    The lock is the folder's own (flock on its descriptor), so no lock file is left behind."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def write_manifest(sweep_dir: Path, runs: list[RunSpec]) -> None:
    """Add ``runs`` to the manifest (earlier grids' runs in the same folder are kept), atomically."""
    with manifest_lock(sweep_dir):
        save_manifest(sweep_dir, {**read_manifest(sweep_dir), **{run.run_name: run.manifest_entry() for run in runs}})


def save_manifest(sweep_dir: Path, entries: dict[str, dict[str, Any]]) -> None:
    """Write the manifest of ``sweep_dir`` whole or not at all (a kill or a full disk keeps the old one)."""
    text = json.dumps({"runs": entries}, indent=1).encode()
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    write_atomically(Path(sweep_dir) / MANIFEST_FILE, lambda handle: handle.write(text))


def changed_runs(sweep_dir: Path, runs: list[RunSpec]) -> list[str]:
    """Runs whose directory was planned before with other flags (the sweep would mix two configurations)."""
    previous = read_manifest(sweep_dir)
    return [run.run_name for run in runs
            if run.run_name in previous and previous[run.run_name]["flags"] != list(run.flags)]
