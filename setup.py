"""The one compiled part: gateway/h1/_wire.c. It is optional: where it cannot be built (no C
compiler or no Python headers) the install goes on and gateway runs its Python twins."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("gateway.h1._wire", ["gateway/h1/_wire.c"], optional=True)])
