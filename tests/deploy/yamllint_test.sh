#!/usr/bin/env bash
# yamllint (deploy/.yamllint, strict: warnings fail too) on every YAML file
# under deploy/.
#   tests/deploy/yamllint_test.sh SOURCE_ROOT
set -euo pipefail
root=$1
command -v yamllint >/dev/null || { echo "SKIP: yamllint is not installed (tools/install-deps.sh)"; exit 77; }
cd "$root"
mapfile -t files < <(find deploy -name '*.yaml' -o -name '*.yml' | sort)
((${#files[@]} > 10)) || { echo "FAIL: only ${#files[@]} YAML files under deploy/"; exit 1; }
yamllint -c deploy/.yamllint --strict "${files[@]}"
echo "PASS: yamllint on ${#files[@]} files"
