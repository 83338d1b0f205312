"""The learning code of the QMP reproduction, one subpackage per role, in the order data flows:

    core/        networks with the task axis first, multi-task SAC, per-task replay buffers
    behaviour/   who acts while collecting: each task's own policy, the Q-switch (QMP) and its mixtures, CTPG's guides
    baselines/   the paper's baselines, each a small extension of the SAC update (DnC, UDS/CDS, PCGrad, MCAL, DECAF)
    training/    the loop: config, sampler, trainer, evaluation, logging, checkpoints, videos
    experiment_table.py  what each experiment name means, one row per name (imports nothing; every layer reads it)
    experiments.py  what each experiment name builds from the parts above (the composition root)
    sweeps/      grids of runs (the paper's recipes, grid files) and their Ray runner (sweep.py)
    analysis/    finished runs: loading, statistics, plots (depends on everything; nothing in training imports it)

Imports run one way: core <- behaviour, baselines <- training <- experiments, sweeps <- analysis; nothing in
learning/ or environments/ imports a top-level script (run.py, garage_experiments.py, run_policy.py).
"""
