"""notebooks/agent_pipeline.ipynb runs, with the same cells, against another OpenAI-compatible
server: STREAMNB_LLM_URL and STREAMNB_LLM_MODEL point it at a server in another process (the
demo server's HTTP side started by ``python -m streamnb.demo``), and its check cell keeps to
what any model must satisfy."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from ._support import NOTEBOOK_DIR, NOTEBOOK_TIMEOUT, execute, kernel_env, outputs_of, read

PREFIX = "streamnb demo HTTP server listening on "


@pytest.mark.timeout(NOTEBOOK_TIMEOUT)
def test_agent_pipeline_against_a_server_named_by_the_environment() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamnb.demo", "--port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=kernel_env(PYTHONUNBUFFERED="1"),
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        line = proc.stdout.readline()
        assert line.startswith(PREFIX), line
        url = line[len(PREFIX) :].strip() + "/v1"
        env = kernel_env(STREAMNB_LLM_URL=url, STREAMNB_LLM_MODEL="any-model-name")
        nb = execute(read(NOTEBOOK_DIR / "agent_pipeline.ipynb"), env=env)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert not outputs_of(nb, "error")
    printed = "".join(o.text for _, o in outputs_of(nb, "stream", "stdout"))
    assert f"model 'any-model-name' at {url}" in printed
    assert "agent pipeline over HTTP (any-model-name): 8 prompts, 6 tools" in printed
