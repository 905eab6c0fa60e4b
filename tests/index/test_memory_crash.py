"""An id returned by add() survives kill -9 of the process that added it."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from index import EditMemory

REPO_ROOT = Path(__file__).resolve().parents[2]
ADD_FOREVER = """
import sys
import numpy as np
from index import EditMemory

memory = EditMemory(sys.argv[1], 8, "test-encoder")
row = 0
while True:
    vector = np.random.default_rng(row).standard_normal(8)
    vector /= np.linalg.norm(vector)
    print(memory.add(f"prompt {row}", "target", vector), row, flush=True)
    row += 1
"""


def test_every_printed_id_survives_sigkill(memory_path):
    adder = subprocess.Popen(
        [sys.executable, "-c", ADD_FOREVER, str(memory_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    printed = [adder.stdout.readline() for _ in range(200)]
    adder.send_signal(signal.SIGKILL)
    # Lines already in the pipe were printed after their add returned: they count too.
    printed += adder.stdout.read().splitlines(keepends=True)
    adder.wait()
    assert adder.returncode == -signal.SIGKILL
    rows_by_id = {int(edit_id): int(row) for edit_id, row in (line.split() for line in printed if line.endswith("\n"))}
    assert len(rows_by_id) >= 200

    with EditMemory.open_existing(memory_path) as memory:
        for edit_id, row in rows_by_id.items():
            assert memory.get(edit_id).prompt == f"prompt {row}"
            vector = np.random.default_rng(row).standard_normal(8)
            assert memory.search(vector / np.linalg.norm(vector), k=1)[0][0].id == edit_id
