"""The training loop in garage's shape: config, lockstep sampler, trainer, evaluation, logger,
checkpoints, and the episode recorder shared by training-time videos and run_policy.py."""
