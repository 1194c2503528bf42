"""Builds the optional C fast path for sFlow decoding; all other metadata lives in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and topfib uses the
pure-Python fallback (collector/sflow_fast_fallback.py), which behaves identically but slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "collector._sflow_fast",
            sources=["collector/_sflow_fast.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)
