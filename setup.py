"""Builds the optional C fast paths (sFlow decoding, ExaBGP JSON updates, the RIB's prefix-key
probes); all other metadata lives in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and topfib uses the
pure-Python fallbacks (collector/sflow/fast_fallback.py; the Python fast path of
collector/rib/exabgp_json.py; collector/rib/keymap.py's probes), which behave identically but
slower.
"""

from setuptools import Extension, setup

COMPILE_ARGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]

setup(
    ext_modules=[
        Extension(
            "topfib.collector.sflow._sflow_fast",
            sources=["collector/sflow/_sflow_fast.c"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        ),
        Extension(
            "topfib.collector.rib._exabgp_fast",
            sources=["collector/rib/_exabgp_fast.c"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        ),
        Extension(
            "topfib.collector.rib._keymap_fast",
            sources=["collector/rib/_keymap_fast.c"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        ),
    ]
)
