"""The compiled parts: gateway/h1/_wire.c (the HTTP/1.1 hot path) and gateway/_accessline.c
(gateway's access line). Both are optional: where they cannot be built (no C compiler or no
Python headers) the install goes on and gateway runs their Python twins."""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("gateway.h1._wire", ["gateway/h1/_wire.c"], optional=True),
    Extension("gateway._accessline", ["gateway/_accessline.c"], optional=True),
])
