"""The compiled parts: gateway/h1/_wire.c (the HTTP/1.1 hot path), gateway/_accessline.c
(gateway's access line) and gateway/ws/_frames.c (the commonest WebSocket frames). All are
optional: where they cannot be built (no C compiler or no Python headers) the install goes
on and gateway runs their Python twins."""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("gateway.h1._wire", ["gateway/h1/_wire.c"], optional=True),
    Extension("gateway._accessline", ["gateway/_accessline.c"], optional=True),
    Extension("gateway.ws._frames", ["gateway/ws/_frames.c"], optional=True),
])
