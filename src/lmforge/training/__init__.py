"""The training loop and what plugs into it: optimizer, schedules, checkpoints, hooks, loggers."""
