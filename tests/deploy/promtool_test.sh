#!/usr/bin/env bash
# promtool: both scrape configs, the alert rules, and their unit tests.
#   tests/deploy/promtool_test.sh SOURCE_ROOT
set -euo pipefail
root=$1
command -v promtool >/dev/null || { echo "SKIP: promtool is not installed (prometheus, tools/install-deps.sh)"; exit 77; }
cd "$root/deploy/prometheus"
promtool check config prometheus.yml
promtool check config prometheus.compose.yml
promtool check rules rules.yml
promtool test rules rules_test.yml
echo "PASS: promtool check config (2), check rules, test rules"
