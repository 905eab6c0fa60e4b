"""An id returned by add() survives kill -9 of the process that added it, also while an
"auto" memory trains its approximate index in the background and writes it."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index import EditMemory, MemoryConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
AUTO = {"index_kind": "auto", "auto_threshold": 300, "flush_every": 40}
ADD_FOREVER = """
import json
import sys
import numpy as np
from index import EditMemory, MemoryConfig

memory = EditMemory(sys.argv[1], 8, "test-encoder", MemoryConfig(**json.loads(sys.argv[2])))
row = 0
while True:
    vector = np.random.default_rng(row).standard_normal(8)
    vector /= np.linalg.norm(vector)
    print(memory.add(f"prompt {row}", "target", vector), row, memory.info()["search"], flush=True)
    row += 1
"""


@pytest.mark.parametrize(
    ("config", "adds", "searching"),
    [({}, 200, "exact"), (AUTO, 1300, "ivf")],  # auto: past two background builds, searching the second
)
def test_every_printed_id_survives_sigkill(memory_path, config, adds, searching):
    adder = subprocess.Popen(
        [sys.executable, "-c", ADD_FOREVER, str(memory_path), json.dumps(config)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    printed = []
    while len(printed) < adds or searching not in printed[-1]:
        printed.append(adder.stdout.readline())
        assert printed[-1] and len(printed) < 20 * adds, f"the adder stopped, or never searched {searching}"
    adder.send_signal(signal.SIGKILL)
    # Lines already in the pipe were printed after their add returned: they count too.
    printed += adder.stdout.read().splitlines(keepends=True)
    adder.wait()
    assert adder.returncode == -signal.SIGKILL
    rows_by_id = {int(edit_id): int(row) for edit_id, row, _ in (line.split() for line in printed if line.endswith("\n"))}
    assert len(rows_by_id) >= adds

    with EditMemory.open_existing(memory_path, MemoryConfig(**config)) as memory:
        for edit_id, row in rows_by_id.items():
            assert memory.get(edit_id).prompt == f"prompt {row}"
            vector = np.random.default_rng(row).standard_normal(8)
            assert memory.search(vector / np.linalg.norm(vector), k=1)[0][0].id == edit_id
