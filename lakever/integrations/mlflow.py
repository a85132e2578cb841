"""Log lakever snapshots as MLflow dataset inputs and reopen what a run trained on.

The public import path of `lakever.interop.mlflow` (see docs/tracking.md)::

    from lakever.integrations.mlflow import log_input, open_input
"""

from lakever.interop.mlflow import (
    PIN_TAG,
    SNAPSHOT_TAG,
    SPLIT_TAG,
    input_pins,
    load_inputs,
    log_input,
    open_input,
)

__all__ = [
    "PIN_TAG",
    "SNAPSHOT_TAG",
    "SPLIT_TAG",
    "input_pins",
    "load_inputs",
    "log_input",
    "open_input",
]
