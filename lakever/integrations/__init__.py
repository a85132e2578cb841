"""Integrations with experiment trackers: ``lakever.integrations.mlflow``.

Each submodule imports its tracker when one of its functions runs.
"""
