#!/usr/bin/env bash
# deploy/prometheus with the real tool: the scrape config and rules parse, and the rules'
# unit tests (promtool test rules, series of Strata's metric names) pass.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../../deploy/prometheus" && pwd)"
cd "$dir"
promtool check config prometheus.yml
promtool check rules strata-rules.yml
promtool test rules strata-rules.test.yml

# The Grafana dashboard: valid JSON, and every panel's query parses as PromQL (promtool checks
# them as recording rules) and names only metrics the server registers (server_metrics.cc).
dashboard=grafana-dashboard.json
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$dashboard" "$work/dashboard-rules.yml" <<'PY'
import json, re, sys
dash = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
assert exprs, "no queries in the dashboard"
known = set(re.findall(r'"(strata_[a-z_]+)"', open("../../runtime/serving/server_metrics.cc").read()))
assert len(known) > 10, "cannot read the metric names from server_metrics.cc"
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        for name in re.findall(r"strata_[a-z_]+", e):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert base in known, f"dashboard query uses unknown metric {name}"
        out.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(e)}\n")
print(f"dashboard: {len(exprs)} queries")
PY
promtool check rules "$work/dashboard-rules.yml"
