#!/usr/bin/env bash
# The legacy cron check: run one live cycle with the confirmation in the query
# string (no body), read rows[0] of the latest receipt, resolve its snapshot
# ref as evidence. Any failure exits non-zero: never a quiet pass.
#   OPSLEDGER_URL    the gateway (default http://127.0.0.1:8000, the original's address)
#   OPSLEDGER_TOKEN  bearer token, when the server has one
set -euo pipefail

BASE="${OPSLEDGER_URL:-http://127.0.0.1:8000}"
AUTH=()
if [[ -n "${OPSLEDGER_TOKEN:-}" ]]; then AUTH=(-H "Authorization: Bearer ${OPSLEDGER_TOKEN}"); fi

run=$(curl -sS --fail-with-body -X POST "${AUTH[@]}" "$BASE/api/live/cycle/run?confirm=true") \
  || { echo "run refused: $run" >&2; exit 1; }
cycle_id=$(printf '%s' "$run" | python3 -c 'import json,sys; print(json.load(sys.stdin)["receipt"]["cycle_id"])')

latest=$(curl -sS --fail-with-body "$BASE/api/live/cycle/latest") \
  || { echo "latest failed: $latest" >&2; exit 1; }
snapshot_ref=$(printf '%s' "$latest" | python3 -c '
import json, sys
env = json.load(sys.stdin)
if env["status"] != "ready":
    sys.exit("no receipt: %s" % env["error"])
r = env["rows"][0]
if r["cycle_id"] != sys.argv[1]:
    sys.exit("latest receipt %s is not this run %s" % (r["cycle_id"], sys.argv[1]))
print("cycle %s: %s/%s bundle=%s stale=%s reco=%s push=%s" % (
    r["cycle_id"], r["result"], r["decision"], r["bundle"]["decision"], r["bundle"]["stale"],
    r["reco"]["decision"], r["push"]["delivery_actual"]), file=sys.stderr)
if r["result"] != "OK":
    sys.exit("cycle %s: result %s (%s)" % (r["cycle_id"], r["result"], r["reason"]))
print(r["snapshot_ref"])
' "$cycle_id")

evidence=$(curl -sS --fail-with-body -G "$BASE/api/evidence/resolve" --data-urlencode "ref=$snapshot_ref") \
  || { echo "evidence $snapshot_ref did not resolve: $evidence" >&2; exit 1; }
printf '%s' "$evidence" | python3 -c '
import json, sys
view = json.load(sys.stdin)
if view["status"] != "ready":
    sys.exit("evidence %s: %s" % (sys.argv[1], view["error"]))
if view["rows"][0]["data"]["cycle_id"] != sys.argv[2]:
    sys.exit("snapshot %s is not cycle %s" % (sys.argv[1], sys.argv[2]))
' "$snapshot_ref" "$cycle_id"
echo "OK $cycle_id $snapshot_ref"
