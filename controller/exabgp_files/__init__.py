"""Files ExaBGP itself reads: the configuration template and the bridge it runs as its API process.

Not imported by topfib: located with ``importlib.resources`` (see controller/exabgp_config.py).
"""
