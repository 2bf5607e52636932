"""Evaluation: candidate pools, ranking, the plan of replicas and sweeps, statistics, baselines."""
