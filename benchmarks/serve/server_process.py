"""A `serac-serve` process for the benchmarks: a copy of an editor folder, the server started on
127.0.0.1 with one torch thread, waited for, listed, and killed."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import torch

from mend.finetune import FTEditor
from mend.finetune.config import FTConfig
from serac import SERAC
from serac.serac.config import SERACConfig

TOKEN = "benchmark-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SERVE = Path(sys.executable).with_name("serac-serve")


def build_editor(kind: str, folder: Path) -> None:
    """A tiny editor saved in `folder`: "tiny-serac" (routes only near-identical prompts) or "tiny-ft"."""
    if kind == "tiny-serac":
        editor = SERAC.from_pretrained(SERACConfig(model_name="tiny-llama", counterfactual_model="tiny-llama",
                                                   classifier_backbone="tiny-bert", rerank=False, max_new_tokens=4), device="cpu")
        with torch.no_grad():  # p = σ(1000·cos − 999): only (near-)identical prompts are in scope
            editor.classifier.embed_scale.fill_(1000.0)
            editor.classifier.embed_bias.fill_(-999.0)
        editor.save(folder)
        editor.close()
    elif kind == "tiny-ft":
        FTEditor.from_pretrained("tiny-llama", FTConfig(model_name="tiny-llama", steps=2)).save(folder)
    else:
        raise ValueError(f"unknown editor to build: {kind!r}")


def prepare(source: str, folder: Path) -> None:
    """Copy the editor folder `source` (never written) into `folder`, or build a tiny one there."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if Path(source).is_dir():
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("memory.lock"))
    else:
        build_editor(source, folder)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    def __init__(self, folder: Path, log: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "SERAC_SERVE_TOKEN": TOKEN, "OMP_NUM_THREADS": "1", "SERAC_DEVICE": "cpu"}
        self._log = open(log, "ab")
        self.process = subprocess.Popen([str(SERVE), str(folder), "--port", str(self.port), "--threads", "1", *extra],
                                        env=environment, stdout=self._log, stderr=subprocess.STDOUT)
        self.started_in = self._wait_until_healthy()

    def _wait_until_healthy(self, timeout: float = 300) -> float:
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"serac-serve exited with {self.process.returncode}; see {self._log.name}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return time.monotonic() - began
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"serac-serve did not answer within {timeout} s")

    def stored_edits(self) -> dict[str, str]:
        """{id: prompt} of every edit the server holds, read page by page."""
        edits, offset = {}, 0
        while True:
            page = httpx.get(f"{self.url}/v1/edits", params={"offset": offset, "limit": 500}, headers=AUTH, timeout=60).json()
            edits.update({edit["id"]: edit["prompt"] for edit in page["data"]})
            offset += len(page["data"])
            if not page["has_more"]:
                return edits

    def metric_values(self, name: str) -> dict[str, float]:
        """{sample: value} of the unlabelled samples of the metric `name` in /metrics."""
        text = httpx.get(f"{self.url}/metrics", headers=AUTH, timeout=60).text
        return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith(name) and "{" not in line}

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        self._log.close()
