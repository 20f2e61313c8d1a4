"""Fixtures every test file may use (plain helpers are in testkit.py)."""

from fixtures_server import smollm2_server  # noqa: F401  - a real `transformers serve` on loopback, session scope
