"""Machine-learning workflow: training reads, splits, drift and dataset cards."""
