"""The folder of one (editor, dataset) run of the lifelong study, which lets a run resume.

    <results_dir>/<label>__<dataset>/
        settings.json   what the rows depend on; a re-run with other settings is refused
        rows.jsonl      one row per checkpoint (T = 0 first), appended and fsynced as measured
        unedited.pt     the unedited editor's scores (and answers) on the records' locality
                        prompts, measured once: a resume does not pay those minutes again
        state/          the editor at the last checkpoint (`Editor.save`) + study_progress.json
        live/           the copy of a saved editor that the running editor works in
        values/         MEMIT's optimised value of each edit, written as found, so a batch of
                        100 edits interrupted mid-way resumes (`MEMITConfig.value_cache`)
        finished.json   written when the run ends: its last T and why it stopped, if it did

The state is saved before its row is appended, so after a crash the state is never behind
the rows; a state one checkpoint ahead (the crash fell between the two) is measured again on
resume, which gives the same metrics. A saved editor is never loaded in place: memory editors
(SERAC, the cache) write their edits into the folder they were loaded from, which would change
the user's trained editor or the saved state behind the run's back.
"""

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from serac.core.editor import Editor
from serac.core.evaluation import Unedited
from serac.core.registry import load_working_copy
from serac.core.saving import exclusive_folder, replace_folder, write_atomically

SETTINGS_FILE = "settings.json"
ROWS_FILE = "rows.jsonl"
FINISHED_FILE = "finished.json"
UNEDITED_FILE = "unedited.pt"
CHECKPOINTS = "checkpoints"  # the one setting a run in progress may change (`_take_checkpoints`)
PROGRESS_FILE = "study_progress.json"  # inside state/: edits held, editing (wall and CPU) and wall seconds so far

log = logging.getLogger(__name__)


class ChangedSettingsError(ValueError):
    """A run folder holds rows measured with other settings than the command's."""


class RunFolder:
    """Rows, settings and saved state of one (editor label, dataset) run; see the module docstring."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.state = self.path / "state"
        self.working_copy = self.path / "live"
        self.values = self.path / "values"

    def exclusive(self):
        """A context holding this run's folder for one process: two studies writing one run's rows
        and state would interleave them (`saving.FolderInUseError` for the second)."""
        return exclusive_folder(self.path, f"the study run {self.path.name}")

    def check_settings(self, settings: dict) -> None:
        """Record `settings` on the first run; on later runs refuse any that changed, naming them."""
        self.path.mkdir(parents=True, exist_ok=True)
        file = self.path / SETTINGS_FILE
        settings = json.loads(json.dumps(settings))  # as they read back (tuples become lists)
        if not file.exists():
            write_atomically(file, lambda staging: staging.write_text(json.dumps(settings, indent=2)))
            return
        stored = json.loads(file.read_text())
        changed = [key for key in sorted({*stored, *settings}) if stored.get(key) != settings.get(key)]
        if changed == [CHECKPOINTS]:
            with self.exclusive():  # not while another study runs it with the old checkpoints
                self._take_checkpoints(stored[CHECKPOINTS], settings[CHECKPOINTS])
                write_atomically(file, lambda staging: staging.write_text(json.dumps(settings, indent=2)))
            return
        if changed:
            raise ChangedSettingsError(
                f"{self.path} holds a run made with other settings; changed: "
                f"{'; '.join(f'{key} (was {stored.get(key)!r}, now {settings.get(key)!r})' for key in changed)}. "
                "Give another results_dir, or delete that folder to start this run over."
            )

    def _take_checkpoints(self, stored: list[int], wanted: list[int]) -> None:
        """Accept other checkpoints for a run in progress: its rows depend on the edits, not on
        where they are measured, so a checkpoint may be added ahead of the run (ROME: 200, 300 and
        400 between 100 and 500, to place a collapse) - but none that already has a row may go, and
        none may be added behind the saved state, where it can no longer be measured."""
        if self.finished():
            raise ChangedSettingsError(f"{self.path} is a finished run: its checkpoints cannot change (were {stored}, now {wanted})")
        measured = {row["T"] for row in self.rows()} - {0}
        dropped = sorted(measured - set(wanted))
        if dropped:
            raise ChangedSettingsError(f"{self.path} has rows at T = {dropped}, which the new checkpoints {wanted} leave out")
        reached = max((self.saved_progress() or {}).get("T", 0), max(measured, default=0))
        behind = sorted(t for t in set(wanted) - set(stored) if t <= reached)
        if behind:
            raise ChangedSettingsError(f"{self.path} is at T = {reached}: the new checkpoints {behind} can no longer be measured")
        log.info("%s: checkpoints %s (were %s)", self.path.name, wanted, stored)

    def rows(self) -> list[dict]:
        """The rows measured so far; a last line cut short by a crash is dropped."""
        file = self.path / ROWS_FILE
        if not file.exists():
            return []
        rows = []
        for line in file.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return rows

    def append_row(self, row: dict) -> None:
        """Append one row and push it to disk before going on: a crash later keeps it."""
        with (self.path / ROWS_FILE).open("a") as file:
            file.write(json.dumps(row) + "\n")
            file.flush()
            os.fsync(file.fileno())

    def unedited(self, measure: Callable[[], Unedited]) -> Unedited:
        """The unedited measurements saved by an earlier run of this folder, else `measure()`, saved."""
        file = self.path / UNEDITED_FILE
        if file.exists():
            try:
                return Unedited.from_state(torch.load(file, weights_only=True))
            except Exception as error:  # unreadable (damaged, or another torch's format): measure again
                log.warning("%s is unreadable (%s: %s); measuring the unedited model again", file, type(error).__name__, error)
        unedited = measure()
        write_atomically(file, lambda staging: torch.save(unedited.to_state(), staging))
        return unedited

    def save_state(self, editor: Editor, progress: dict) -> None:
        """Save the editor and its progress into `state.tmp`, then put it at `state` in one rename."""
        staging = self.path / "state.tmp"
        shutil.rmtree(staging, ignore_errors=True)  # left by a crash during an earlier save
        editor.save(staging)
        (staging / PROGRESS_FILE).write_text(json.dumps(progress))
        replace_folder(staging, self.state)  # the old state ends up in state.tmp
        shutil.rmtree(staging, ignore_errors=True)

    def saved_progress(self) -> dict | None:
        """The progress saved with the state (`save_state`), None before the first checkpoint."""
        file = self.state / PROGRESS_FILE
        return json.loads(file.read_text()) if file.exists() else None

    def load_state(self, device=None) -> Editor:
        """The editor as saved at the last checkpoint (loaded from a working copy)."""
        return load_working_copy(self.state, self.working_copy, device)

    def remove_working_copy(self) -> None:
        """Delete the copy a closed editor worked in; the state keeps what a resume needs."""
        shutil.rmtree(self.working_copy, ignore_errors=True)

    def finish(self, last_t: int, stopped: str | None) -> None:
        body = {"T": last_t, "stopped": stopped}
        write_atomically(self.path / FINISHED_FILE, lambda staging: staging.write_text(json.dumps(body)))
        shutil.rmtree(self.values, ignore_errors=True)  # only an unfinished batch needs them

    def finished(self) -> dict | None:
        """{"T": last T measured, "stopped": why it stopped early, or None}, None while unfinished."""
        file = self.path / FINISHED_FILE
        return json.loads(file.read_text()) if file.exists() else None
