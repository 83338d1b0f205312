"""The paper's comparisons as named grids, with docs/baselines.md's command lines, and the numbers the
paper reports (shown beside ours by ``python -m learning.analysis table``).

Figures 7 and 8 come per environment (``fig7_reacher``, ...) and whole (``fig7``, ``fig8``). Budgets are
each environment's preset epochs (docs/fidelity.md#presets) unless a recipe says otherwise; ``--budget_scale`` scales
them. Where the paper gives no tuned value for an environment the preset is used (docs/reproducing.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from learning.sweeps.grid import ExperimentSpec, Grid, GridError, load_grid_file

REACHER, MAZE, WALKER = "JacoReachMT5-v1", "MazeLarge-10-v0", "Walker2dMT4-v0"
CDS, MT10, MT50, KITCHEN = "MetaWorldCDS-v1", "MetaWorldMT10-v2", "MetaWorldMT50-v2", "KitchenMTEasy-v0"
ENV_KEYS = {"reacher": REACHER, "maze": MAZE, "walker": WALKER, "cds": CDS, "mt10": MT10, "mt50": MT50,
            "kitchen": KITCHEN}
PAPER_SEEDS = (1, 2, 3, 4, 5)

MULTIHEAD = {"policy_architecture": "multihead", "Q_architecture": "multihead"}
PARAMETER_SIZES = {REACHER: {"hidden_sizes": [512, 512], "lr": 0.001}, MAZE: {"hidden_sizes": [834, 834], "lr": 3e-4}}
MT10_SHARING = {MT10: {"qmp_own_policy_prob": 0.7}}  # the paper's conservative sharing on MT10 (I.5)

SEPARATED = ExperimentSpec("Separated", "dnc_sac")
SEPARATED_QMP = ExperimentSpec("Separated + QMP", "qmp_dnc", env_flags=MT10_SHARING)
PARAMETERS = ExperimentSpec("Parameters", "mtsac", MULTIHEAD, env_flags=PARAMETER_SIZES)
PARAMETERS_QMP = ExperimentSpec("Parameters + QMP", "qmp_sac", MULTIHEAD, env_flags={
    **PARAMETER_SIZES, MAZE: {**PARAMETER_SIZES[MAZE], "qmp_warmup_iterations": 100}, **MT10_SHARING})
DATA = ExperimentSpec("Data", "uds_dnc", {"sharing_quantile": 0})
DATA_QMP = ExperimentSpec("Data + QMP", "qmp_uds_dnc", {"sharing_quantile": 0}, env_flags=MT10_SHARING)

QMP = ExperimentSpec("QMP", "qmp_dnc", env_flags=MT10_SHARING)
NO_SHARED = ExperimentSpec("No-Shared-Behaviors", "dnc_sac")
FULLY_SHARED = ExperimentSpec("Fully-Shared-Behaviors", "sac", {"policy_architecture": "shared",
                                                                 "Q_architecture": "shared"}, env_flags={
    REACHER: {"hidden_sizes": [600, 600], "lr": 3e-4}, MAZE: {"hidden_sizes": [834, 834], "lr": 3e-4},
    **{env: {"hidden_sizes": [512, 512], "lr": 1e-3} for env in (CDS, MT10, MT50)}})
DNC = ExperimentSpec("DnC", "dnc_sac", {"kl_coeff": 0.001, "distillation_n_epochs": 500}, distillations=10)
DNC_REG = ExperimentSpec("DnC (reg.)", "dnc_sac", {"kl_coeff": 0.001}, env_flags={MAZE: {"kl_coeff": 0.0001}})
UDS = ExperimentSpec("UDS", "uds_dnc", {"sharing_quantile": 0})

PCGRAD = ExperimentSpec("PCGrad", "mtsac", {**MULTIHEAD, "use_pc_grad": True})
QMP_PCGRAD = ExperimentSpec("QMP + PCGrad", "qmp_sac", {**MULTIHEAD, "use_pc_grad": True})

FIG7_ENVS = (REACHER, MAZE, CDS, MT10, MT50, KITCHEN)
FIG8_ENVS = (REACHER, MAZE, WALKER, CDS, MT10, KITCHEN)
FIG7_METHODS = (SEPARATED, SEPARATED_QMP, PARAMETERS, PARAMETERS_QMP, DATA, DATA_QMP)
FIG8_METHODS = (QMP, NO_SHARED, FULLY_SHARED, DNC, DNC_REG, UDS)


def _per_env(prefix: str, envs: tuple[str, ...], methods: tuple[ExperimentSpec, ...], what: str) -> dict[str, Grid]:
    grids = {prefix: Grid(prefix, methods, envs, PAPER_SEEDS, description=f"{what}, every environment")}
    for key, env in ENV_KEYS.items():
        if env in envs:
            grids[f"{prefix}_{key}"] = Grid(f"{prefix}_{key}", methods, (env,), PAPER_SEEDS,
                                            description=f"{what}, {env}")
    return grids


PAPER_GRIDS: dict[str, Grid] = {
    **_per_env("fig7", FIG7_ENVS, FIG7_METHODS, "Fig. 7: QMP added to no, parameter and data sharing"),
    **_per_env("fig8", FIG8_ENVS, FIG8_METHODS, "Fig. 8: QMP against other ways to share behaviours"),
    "table2": Grid("table2", (PCGRAD, QMP_PCGRAD), (REACHER, MAZE, KITCHEN, MT50), PAPER_SEEDS,
                   description="Table 2 / Fig. 15: QMP + PCGrad"),
    "fig10": Grid("fig10", (QMP, ExperimentSpec("QMP-Uniform", "qmp_dnc", {"qmp_mixture": "uniform"}),
                            ExperimentSpec("QMP-Domain", "qmp_dnc", {"qmp_mixture": "domain"})),
                  (REACHER,), PAPER_SEEDS, description="Fig. 10: Q-switch against uniform and domain mixtures"),
    "hstep": Grid("hstep", (NO_SHARED, *(ExperimentSpec(f"QMP H={h}", "qmp_dnc", {"policy_sampling_freq": h})
                                         for h in (1, 5, 10, 25, 50))),
                  (MAZE,), PAPER_SEEDS, description="Fig. 17: temporally extended QMP (H-step) on Maze"),
    "qmp_vs_ctpg": Grid("qmp_vs_ctpg", (
        SEPARATED, ExperimentSpec("+QMP", "qmp_dnc", env_flags=MT10_SHARING), ExperimentSpec("+CTPG", "ctpg_dnc")),
        (REACHER, MAZE, MT10), (1, 2, 3), n_epochs={REACHER: 500, MAZE: 100, MT10: 60},
        description="Separated, +QMP, +CTPG at reduced budgets (0.5M / 0.6M / 3M env steps)"),
}
"""Recipe name -> the grid of runs of one of the paper's comparisons."""

def load_grid(name_or_path: str) -> Grid:
    """A recipe by name, or a ``.yaml``/``.yml``/``.toml`` grid file. Raises GridError."""
    if name_or_path in PAPER_GRIDS:
        return PAPER_GRIDS[name_or_path]
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml", ".toml"):
        raise GridError(f"{name_or_path!r} is neither a recipe ({', '.join(PAPER_GRIDS)}) nor a .yaml/.toml grid file")
    return load_grid_file(path)


@dataclass(frozen=True)
class PaperNumber:
    """A success rate the paper states for one method on one environment at a number of env steps."""

    env: str
    labels: tuple[str, ...]
    env_steps: int
    value: float | None
    relation: str
    source: str

    def text(self) -> str:
        if self.value is None:
            return "not in the stored paper text"
        return f"{self.relation} {self.value:.2f}"


PAPER_NUMBERS: tuple[PaperNumber, ...] = (
    PaperNumber(REACHER, ("Separated + QMP", "QMP", "+QMP"), 500_000, 0.90, ">",
                "§7.2: QMP reaches > 90% success at 0.5M env steps"),
    PaperNumber(REACHER, ("QMP-Uniform",), 2_000_000, 0.60, "≈", "§7.4, Fig. 10: QMP-Uniform only 60% success"),
    *(PaperNumber(env, (label,), steps, value, "=", "Table 2 (final success rate)")
      for env, steps, pcgrad, qmp_pcgrad in ((REACHER, 2_000_000, 0.78, 0.78), (MAZE, 12_000_000, 0.90, 1.00),
                                             (KITCHEN, 5_000_000, 0.55, 0.60), (MT50, 200_000_000, 0.35, 0.42))
      for label, value in (("PCGrad", pcgrad), ("QMP + PCGrad", qmp_pcgrad))),
)
"""The numbers the paper states: its text (§7.2, §7.4) and Table 2 (appendix F.3 of
papers/qmp-iclr2025-paper.txt: PCGrad vs QMP + PCGrad, final success rates at each environment's full budget)."""
