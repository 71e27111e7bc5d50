"""The one thing pyproject.toml cannot say without setuptools' experimental ext-modules: router
capture's graph callback is C (storyteller/engine/router_tap.c), compiled with the package."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("storyteller.engine._router_tap", ["storyteller/engine/router_tap.c"])])
