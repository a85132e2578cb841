#!/usr/bin/env bash
# Set up (first run only), lint, type-check and run the whole test suite.
# With no arguments (the README's command, and CI): every test under the derandomised
# hypothesis profile, then the property tests once more with fresh random examples (the
# `explore` tier: a failure prints the example and how to reproduce it). With arguments:
# pytest with those arguments only. Tests run on every core (pytest-xdist; each test has its
# own temporary directory). docs/testing.md, "Tiers".
source "$(dirname "$0")/_env.sh"
# The dataset-card tests render cards in headless Chromium (Debian's package).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
  apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi
ruff check lakever tests examples benchmarks scripts
ruff format --check lakever tests examples benchmarks scripts
mypy
python -m pytest -n auto --dist worksteal "$@"
if [ $# -eq 0 ]; then
  HYPOTHESIS_PROFILE=explore python -m pytest -n auto -q -p no:cacheprovider -m "hypothesis and not slow"
fi
