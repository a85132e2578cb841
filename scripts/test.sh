#!/usr/bin/env bash
# Set up (first run only), lint, type-check and run the whole test suite.
source "$(dirname "$0")/_env.sh"
ruff check lakever tests examples benchmarks scripts
ruff format --check lakever tests examples benchmarks scripts
mypy
python -m pytest "$@"
