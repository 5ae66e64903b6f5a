"""The ``trio-pool`` command's implementation (private; only ``__main__`` uses it).

The library core never imports this package: it is the command line on top of
the public API, nothing more.
"""
