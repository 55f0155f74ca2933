"""``GET <prefix>/_health``: whether the API's database answers, for a load
balancer or an orchestrator's probe. It needs no token, even from an API that
requires one, and says nothing but ``ok`` or the shared error body."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import flask_restful
from flask import Response

from ..engine import default_engine
from . import basic

if TYPE_CHECKING:
    from .flask import Api

#: The methods ``_health`` serves.
HEALTH_ALLOW = "GET, HEAD, OPTIONS"


class Health(flask_restful.Resource):
    """``GET /_health`` on the API's prefix: 200 ``{"status": "ok"}`` when the
    database answers a trivial query within ``BACKO_HEALTH_TIMEOUT`` seconds,
    else 503 ``STORAGE_UNAVAILABLE`` (with ``Retry-After``). Query parameters
    are ignored (probes add some to get past caches); the answer is never
    cached (``Cache-Control: no-store``)."""

    def __init__(self, *, backo_api: Api) -> None:
        super().__init__()
        self.backo_api = backo_api

    def get(self) -> Any:
        timeout = self.backo_api.settings()["BACKO_HEALTH_TIMEOUT"]
        engine = self.backo_api.engine or default_engine()
        body, status, headers = basic.health(engine=engine, timeout=timeout)
        headers["Cache-Control"] = "no-store"
        return body, status, headers

    def options(self) -> Response:
        return Response(status=200, headers={"Allow": HEALTH_ALLOW})
