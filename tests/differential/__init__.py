"""Differential tests: the same requests through urllib3 and trio_pool."""
