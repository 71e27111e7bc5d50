"""The one thing pyproject.toml cannot say without setuptools' experimental ext-modules: router
capture's graph callback is C (storyteller/engine/router_tap.c), and tensor overrides are checked
with C++'s std::regex, llama.cpp's regex dialect (storyteller/engine/ecma_regex.cpp); both are
compiled with the package."""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("storyteller.engine._router_tap", ["storyteller/engine/router_tap.c"]),
    Extension("storyteller.engine._ecma_regex", ["storyteller/engine/ecma_regex.cpp"], language="c++"),
])
