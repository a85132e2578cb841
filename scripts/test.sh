#!/usr/bin/env bash
# Set up (first run only), lint, type-check and run the whole test suite.
source "$(dirname "$0")/_env.sh"
ruff check lakever tests examples benchmarks
ruff format --check lakever tests examples benchmarks
mypy
python -m pytest "$@"
