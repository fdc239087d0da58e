"""Fakes for tests, one per edge: they stand where a kernel adapter (or the API) stands in a node.

Imported by tests only, never by product code.
"""
