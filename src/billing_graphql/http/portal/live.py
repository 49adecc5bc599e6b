"""The portal's one script: its usage bars kept live over the gateway's WebSocket (``static/usage-live.js``).

Served by the app (no CDN), at a path outside ``/portal/{token}`` so it is cached once for every link.
The page includes it only where it shows usage bars; without JavaScript the page is as rendered.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from litestar import Response, get

SCRIPT = Path(__file__).parent / "static" / "usage-live.js"
SCRIPT_PATH = "/portal-assets/usage-live.js"


@cache
def _script() -> bytes:
    return SCRIPT.read_bytes()


@get(SCRIPT_PATH, name="billing_portal_usage_script", include_in_schema=False, sync_to_thread=False)
def usage_script() -> Response[bytes]:
    return Response(_script(), media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})
