"""The compiled hot path (logd/_hotpath.c); everything else is in pyproject.toml.

``optional``: where no C compiler is found, logd installs without it and runs every line
through the Python path (same records, slower: see docs/benchmarks.md)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("logd._hotpath", ["logd/_hotpath.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"])])
