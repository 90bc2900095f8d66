#!/usr/bin/env bash
# Lint protos/ with buf's STANDARD rules, offline. Installs the pinned buf from
# package-lock.json on first use; stages the googleapis imports buf needs from
# the installed googleapis-common-protos (PYTHON, else .venv's, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if [ ! -x node_modules/.bin/buf ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
"$PYTHON" -c 'from cift.protogen import stage_lint_imports; stage_lint_imports()'
node_modules/.bin/buf lint
echo "buf lint: protos/ clean (STANDARD rules)"
