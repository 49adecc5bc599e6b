"""Serve bench/plain_app.py with the server options `billing-graphql serve` uses: `serve_plain.py PORT`."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn  # noqa: E402

from billing_graphql import cli  # noqa: E402

if __name__ == "__main__":
    options = dict(getattr(cli, "SERVER_OPTIONS", {"log_level": "info"}))
    uvicorn.run("bench.plain_app:create_app", factory=True, host="127.0.0.1", port=int(sys.argv[1]), workers=1,
                **options)
