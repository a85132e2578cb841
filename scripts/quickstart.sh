#!/usr/bin/env bash
# Set up (first run only) and run the quickstart on a local lake under ./lake.
source "$(dirname "$0")/_env.sh"
python examples/quickstart.py "${1:-lake}"
