"""Fuzz the doors outside GraphQL on a served gateway (run by tests/fuzz/run_schemathesis.sh).

    python -m tests.fuzz.fuzz_doors http://127.0.0.1:PORT OWNER_KEY [examples] [--report out.json]

Needs the server's BILLING_PORTAL_SECRET, BILLING_SANDBOX_WEBHOOK_SECRET and
BILLING_RAZORPAY_WEBHOOK_SECRET in the environment. Opens a portal session with the owner's key,
then sends ``examples`` hostile form posts to the portal's actions and ``examples`` signed hostile
events to /webhooks/sandbox and /webhooks/razorpay (tests/fuzz/doors.py). Prints how many answers
were HTTP 5xx; exit status 1 when any was.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from urllib.parse import urlsplit

import httpx

from tests.fuzz.doors import examples, form_posts, webhook_posts

CREATE_SESSION = """mutation Portal($input: CreateBillingPortalSessionInput!) {
  createBillingPortalSession(input: $input) { url errors { code message } } }"""


def main(argv: list[str]) -> int:
    base, owner_key = argv[0], argv[1]
    count = int(argv[2]) if len(argv) > 2 and not argv[2].startswith("--") else 200
    report = argv[argv.index("--report") + 1] if "--report" in argv else None
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    with httpx.Client(base_url=base, timeout=60) as client:
        session = client.post("/graphql", json={"query": CREATE_SESSION, "variables": {
            "input": {"returnUrl": "https://app.example/billing"}}}, headers={"authorization": f"Bearer {owner_key}"})
        path = urlsplit(session.json()["data"]["createBillingPortalSession"]["url"]).path
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', client.get(path).text).group(1)
        plan_ids = re.findall(r'<option value="([0-9a-f-]{36})"', client.get(path).text)
        for post in examples(form_posts(csrf, plan_ids), count):
            response = client.post(f"{path}/actions/{post.action}", content=post.body,
                                   headers={"content-type": "application/x-www-form-urlencoded"})
            statuses[f"portal {response.status_code}"] += 1
            if response.status_code >= 500:
                failures.append(repr(post))
        strategy = webhook_posts(sandbox_secret=os.environ["BILLING_SANDBOX_WEBHOOK_SECRET"],
                                 razorpay_secret=os.environ["BILLING_RAZORPAY_WEBHOOK_SECRET"], payment_keys=[])
        for post in examples(strategy, count):
            response = client.post(f"/webhooks/{post.gateway}", content=post.body, headers=post.headers)
            statuses[f"webhooks/{post.gateway} {response.status_code}"] += 1
            if response.status_code >= 500:
                failures.append(repr(post))
    for key, value in sorted(statuses.items()):
        print(f"doors: {key}: {value}")
    print(f"doors: {sum(statuses.values())} requests, {len(failures)} HTTP 5xx")
    for failure in failures[:10]:
        print(f"doors: 5xx for {failure}")
    if report:
        with open(report, "w") as out:
            json.dump({"requests": sum(statuses.values()), "server_errors": len(failures), "failures": failures}, out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
