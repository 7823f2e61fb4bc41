"""A one-file Django project served as WSGI (`--interface wsgi --app-dir tests/apps
django_wsgi:application`): Django's own WSGIHandler, settings made here instead of a package."""

from __future__ import annotations

import hashlib

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="only-for-tests",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)

from django.core.wsgi import get_wsgi_application  # noqa: E402 - needs the settings first
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def hello(request) -> HttpResponse:
    return HttpResponse(f"Hello from Django over {request.META['SERVER_PROTOCOL']}\n",
                        content_type="text/plain")


@csrf_exempt
def echo(request) -> JsonResponse:
    body = request.body
    return JsonResponse({"length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                         "secure": request.is_secure(), "host": request.get_host()})


def stream(request) -> StreamingHttpResponse:
    return StreamingHttpResponse((f"chunk {number}\n" for number in range(4)),
                                 content_type="text/plain")


urlpatterns = [path("", hello), path("echo", echo), path("stream", stream)]

application = get_wsgi_application()
