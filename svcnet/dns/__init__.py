"""Cluster DNS: CoreDNS's kubernetes plugin, answer for answer (see docs/dns.md)."""
