"""The query path never imports torch or sentence-transformers.

`rag ask`, `rag search`, `rag chat` and `rag serve` embed questions with rag.minilm's numpy
encoder (tests/test_embed.py holds its vectors to sentence-transformers'); only building an
index loads the model through sentence-transformers. Each command runs in a fresh interpreter
over the seed index, answers for real, and then reports which modules it had imported. The
terminal commands import no pydantic either: typer 0.29 coerces every option through a pydantic
TypeAdapter, which cost `rag ask` 0.1-0.2 s (pyproject.toml keeps typer below 0.29).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api_server import free_port

HEAVY = ("torch", "sentence_transformers", "transformers")
TERMINAL_HEAVY = (*HEAVY, "pydantic")  # rag serve needs pydantic (FastAPI); a terminal does not

# Run the CLI in this interpreter, then print the heavy modules it imported as the last line.
CLI = f"""
import json, sys
from rag.cli import app
try:
    app(sys.argv[1:])
except SystemExit as end:
    code = end.code
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {TERMINAL_HEAVY!r})))
sys.exit(code)
"""

# `rag serve` in a thread; ask and search over HTTP, then report the same way.
SERVE = f"""
import json, os, sys, threading, time
import httpx
from rag.cli import app
port = sys.argv[1]
threading.Thread(target=app, args=(["serve", "--port", port],), daemon=True).start()
url = "http://127.0.0.1:" + port
deadline = time.monotonic() + 120
while True:
    try:
        if httpx.get(url + "/readyz").status_code == 200:
            break
    except httpx.TransportError:
        pass
    if time.monotonic() > deadline:
        os._exit(3)
    time.sleep(0.1)
asked = httpx.post(url + "/v1/ask", json={{"question": "who sponsors the APEC study?"}}, timeout=60)
found = httpx.get(url + "/v1/search", params={{"q": "hepatitis B"}}, timeout=60)
print(asked.json()["answer"])
print(len(found.json()["hits"]))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})))
sys.stdout.flush()
os._exit(0)
"""


def _run(code: str, args: list[str], cwd: Path, stdin: str = "") -> tuple[list[str], list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    last = lines[-1]  # after the REPL's "> " prompt, for chat
    return lines[:-1], json.loads(last[last.index("[") :])


@pytest.mark.parametrize(
    ("args", "stdin", "shown"),
    [
        (["ask", "who sponsors the APEC study?"], "", "[1]"),
        (["search", "hepatitis B"], "", "NCT"),
        (["chat"], "who sponsors the APEC study?\nquit\n", "[1]"),
    ],
    ids=["ask", "search", "chat"],
)
def test_cli_query_commands_answer_without_torch(
    seed_index_root: Path, args: list[str], stdin: str, shown: str
) -> None:
    output, heavy = _run(CLI, args, seed_index_root, stdin)
    assert shown in "\n".join(output)
    assert heavy == []


def test_serve_answers_without_torch(seed_index_root: Path) -> None:
    output, heavy = _run(SERVE, [str(free_port())], seed_index_root)
    answer, hits = output
    assert "[1]" in answer and int(hits) > 0
    assert heavy == []


def test_building_an_index_does_load_sentence_transformers(tmp_path: Path) -> None:
    """The probe can see the heavy modules: indexing imports them."""
    corpus = Path(__file__).resolve().parents[1] / "corpus"
    _, heavy = _run(CLI, ["index", str(corpus), "--name", "probe"], tmp_path)
    assert {"torch", "sentence_transformers"} <= set(heavy)
