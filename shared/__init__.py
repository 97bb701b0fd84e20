"""Contracts shared by every Slipstream service: subjects, topology, records, settings, plumbing.

Services import from here and never from each other (an import-linter contract in the test
suite enforces it), so a contract is spelled exactly once.
"""
