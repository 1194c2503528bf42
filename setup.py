"""Builds the optional C fast paths (sFlow decoding, ExaBGP JSON updates); all other metadata
lives in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and topfib uses the
pure-Python fallbacks (collector/sflow_fast_fallback.py; the Python fast path of
collector/exabgp_json.py), which behave identically but slower.
"""

from setuptools import Extension, setup

COMPILE_ARGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]

setup(
    ext_modules=[
        Extension(
            "collector._sflow_fast",
            sources=["collector/_sflow_fast.c"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        ),
        Extension(
            "collector._exabgp_fast",
            sources=["collector/_exabgp_fast.c"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        ),
    ]
)
