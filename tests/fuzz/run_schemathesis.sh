#!/usr/bin/env bash
# Fuzz the served gateway with Schemathesis in GraphQL mode, on PostgreSQL (issue 13).
#
# Not part of CI (minutes, not seconds). Needs PostgreSQL at 127.0.0.1:5432 (trust auth) and
# the project's .venv. Schemathesis goes into its own virtualenv, so it never becomes a
# dependency of the project:
#
#   python3.11 -m venv /tmp/st-venv && /tmp/st-venv/bin/pip install schemathesis
#   SCHEMATHESIS=/tmp/st-venv/bin/schemathesis tests/fuzz/run_schemathesis.sh [max examples per operation]
#
# It creates a fresh database, seeds the demo data (one API key per role), serves the gateway
# with rate limits off, and runs Schemathesis once per role (SUPER_ADMIN, OWNER, MEMBER) with
# the check `not_a_server_error`, NUL bytes allowed in strings, and the strategies of
# tests/fuzz/schemathesis_hooks.py for the Decimal and DateTime scalars. Then it drives the doors
# outside GraphQL (tests/fuzz/fuzz_doors.py, issue 19): hostile form posts to every portal action and
# signed hostile events to /webhooks/sandbox and /webhooks/razorpay. Afterwards it counts HTTP 5xx
# answers and "Unexpected error." answers in the recorded traffic (HAR and the doors' report), and the
# "unexpected error" lines the server logged. Exit status 0 when all three are zero.
set -euo pipefail
cd "$(dirname "$0")/../.."

examples="${1:-100}"
schemathesis="${SCHEMATHESIS:-schemathesis}"
out="${FUZZ_OUT:-$(mktemp -d /tmp/billing-fuzz.XXXXXX)}"
database="fuzz_$(date +%s)_$$"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE \"$database\""
export BILLING_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/$database"
export BILLING_RATE_LIMIT=0
export BILLING_JWT_SECRET="fuzzing-secret-of-enough-length-0123456789"
export BILLING_PORTAL_SECRET="fuzzing-portal-secret-0123456789"
export BILLING_SANDBOX_WEBHOOK_SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
export BILLING_RAZORPAY_WEBHOOK_SECRET="fuzzing-razorpay-webhook-secret"

.venv/bin/billing-graphql migrate >/dev/null
.venv/bin/billing-graphql seed-demo >"$out/keys.txt"
.venv/bin/billing-graphql serve --port "$port" >"$out/serve.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" || true
}
trap cleanup EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.5
done

for role in SUPER_ADMIN OWNER MEMBER; do
  key="$(grep "^$role=" "$out/keys.txt" | cut -d= -f2)"
  SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="tests/fuzz${PYTHONPATH:+:$PYTHONPATH}" \
  "$schemathesis" run "http://127.0.0.1:$port/graphql" \
    -H "Authorization: Bearer $key" \
    --checks not_a_server_error \
    --max-examples "$examples" \
    --generation-allow-x00 true \
    --phases examples,coverage,fuzzing \
    --workers 1 \
    --generation-database none \
    --no-color \
    --report har --report-har-path "$out/$role.har" \
    >"$out/$role.txt" 2>&1 || true
  tail -n 15 "$out/$role.txt"
done

owner="$(grep "^OWNER=" "$out/keys.txt" | cut -d= -f2)"
.venv/bin/python -m tests.fuzz.fuzz_doors "http://127.0.0.1:$port" "$owner" "$examples" \
  --report "$out/doors.json" | tee "$out/doors.txt" || true

python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
total = server_errors = unexpected = 0
doors = out / "doors.json"
if doors.exists():
    report = json.loads(doors.read_text())
    total, server_errors = report["requests"], report["server_errors"]
    print(f"doors (portal forms, inbound webhooks): {total} requests, {server_errors} HTTP 5xx")
else:
    server_errors = 1
    print("doors: the portal and webhook fuzzing did not finish (see doors.txt)")
for har in sorted(out.glob("*.har")):
    entries = json.loads(har.read_text())["log"]["entries"]
    statuses = [entry["response"]["status"] for entry in entries]
    bodies = [entry["response"].get("content", {}).get("text") or "" for entry in entries]
    fivexx = sum(1 for status in statuses if status >= 500)
    masked = sum(1 for body in bodies if "Unexpected error." in body)
    total, server_errors, unexpected = total + len(entries), server_errors + fivexx, unexpected + masked
    print(f"{har.stem}: {len(entries)} requests, {fivexx} HTTP 5xx, {masked} 'Unexpected error.'")
logged = (out / "serve.log").read_text().count("unexpected error in")
print(f"total: {total} requests, {server_errors} HTTP 5xx, {unexpected} 'Unexpected error.', "
      f"{logged} unexpected errors logged by the server (output in {out})")
sys.exit(1 if server_errors or unexpected or logged else 0)
PY
