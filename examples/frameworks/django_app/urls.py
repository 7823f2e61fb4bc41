"""The views: / answers JSON, /stream sends five lines one by one (async views, so they run on
the server's event loop rather than in a thread)."""

from __future__ import annotations

import asyncio

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.urls import path


async def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"framework": "django"})


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    async def lines():
        for number in range(5):
            yield f"chunk {number}\n"
            await asyncio.sleep(0.01)

    return StreamingHttpResponse(lines(), content_type="text/plain")


urlpatterns = [path("", index), path("stream", stream)]
