#!/usr/bin/env bash
# deploy/prometheus with the real tool: the scrape config and rules parse, and the rules'
# unit tests (promtool test rules, series of Strata's metric names) pass.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../deploy/prometheus" && pwd)"
cd "$dir"
promtool check config prometheus.yml
promtool check rules strata-rules.yml
promtool test rules strata-rules.test.yml
