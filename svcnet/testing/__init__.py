"""Fakes and models for tests: realistic stand-ins for the kernel and the network."""
