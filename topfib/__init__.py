"""topfib: fit a peering edge's traffic into a small-FIB switch.

The code lives in the top-level folders collector/, controller/, api/ and exabgp/, linked here
so that one import name covers them (see pyproject.toml and docs/design.md).
"""
