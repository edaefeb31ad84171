"""The REPL driven end to end: typed questions, a follow-up, /sources, /trial, /exit."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app


def test_chat_session(seed_index_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(seed_index_root)
    typed = "\n".join(
        [
            "what platelet count does the Fudan trial require?",
            "/sources",
            "and who sponsors it?",
            "/trial NCT04984096",
            "how many participants will it enroll?",
            "/backend nope",
            "/frobnicate",
            "quit",
            "never read",
        ]
    )
    result = CliRunner().invoke(app, ["chat"], input=typed + "\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "Chatting with extractive over 5 trials",
        "Type 'exit' or 'quit' to exit, '/help' for commands",
    ]
    out = result.stdout
    assert "requires platelets ≥ 100 × 10^9 / L" in out
    assert "  [1] T-fcd9d254a2/inclusion/8.2" in lines
    # /sources shows the cited passage with its span in the page.
    assert "    T-fcd9d254a2/inclusion/8.2 (inclusion) chars 3172-3199" in lines
    # The follow-up names no trial: it stays with the Fudan trial.
    assert "sponsor is Fudan University [1]." in out
    assert "Criteria: 5 inclusion, 6 exclusion. Follow-up questions are about NCT04984096." in lines
    assert "enrollment is 50 [1]." in out
    assert "Unknown command /frobnicate; /help lists them" in out
    assert "error: Unknown backend 'nope'; available: extractive, openai" in result.stderr
    assert "never read" not in out
