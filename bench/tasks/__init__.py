"""Evaluation tasks: pure functions from score tables to tidy leaderboard rows, no training."""
