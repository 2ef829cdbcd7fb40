"""The local harness: ``make demo``, ``make up`` and the generated sample catalogs.

It runs the product on one machine (no Docker, no servers to install) and is not part of
it: it imports the product, and nothing in the product imports it; only the CLI's
harness commands (``baghunter demo``, ``up``, ``sample-catalog``) reach it.
"""
