"""Django with Channels: `gateway --dev-tls examples.frameworks.django_app.asgi:application`

HTTP goes to Django's own ASGI handler (/ and /stream, see urls.py), WebSocket to a Channels
consumer (/ws). Django has no ASGI lifespan, so there is none here."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.frameworks.django_app.settings")
django_application = get_asgi_application()  # sets Django up before the consumers are imported

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from examples.frameworks.django_app.consumers import EchoConsumer  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_application,
    "websocket": URLRouter([path("ws", EchoConsumer.as_asgi())]),
})
