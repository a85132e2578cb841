#!/usr/bin/env bash
# Mutation testing of the core modules (see docs/testing.md):
#   bash scripts/mutation.sh                  # every module of [tool.lakever.mutation.modules]
#   bash scripts/mutation.sh sql deletion     # only these
#   bash scripts/mutation.sh --sample 30 --seed 1 diff
# Prints killed/survived/timeout per module and writes benchmarks/results/mutation.json.
source "$(dirname "$0")/_env.sh"
MUTMUT_VERSION=3.8.1
if ! python -c "import mutmut, sys; sys.exit(mutmut.__version__ != '$MUTMUT_VERSION')" 2>/dev/null; then
  python -m pip install --quiet "mutmut==$MUTMUT_VERSION"
fi
exec python scripts/mutation.py "$@"
