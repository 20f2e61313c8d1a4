"""Fixtures every test file may use (plain helpers are in testkit.py)."""

import pytest
from fixtures_server import smollm2_server  # noqa: F401  - a real `transformers serve` on loopback, session scope


@pytest.fixture
def responses(tmp_path):
    """A one-response file for `sgpo judge` (the command-line tests of outputs and config files)."""
    f = tmp_path / "responses.jsonl"
    f.write_text('{"id": "a", "problem": "Start with 7. Add 5.", "response": "7 + 5 = 12\\nAnswer: 12"}\n')
    return f
