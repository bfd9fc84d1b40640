"""Resuming an interrupted training run: what a checkpoint was trained from, and where to pick up.

The checkpoint folder (the ``train`` stage's persisted out) holds the Trainer's ``checkpoint-<step>``
folders and two markers: ``fingerprint.json`` (params and input hashes of the run that wrote them) and
``COMPLETE`` (written when that run finished). A run resumes from the last complete checkpoint only if it
has the same fingerprint and never finished; otherwise the folder is emptied and the run starts over.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .files import write_json

FINGERPRINT = "fingerprint.json"
COMPLETE = "COMPLETE"  # written when a run finished: its checkpoints are then history, not a resume point
PREFIX = "checkpoint-"  # transformers' folder name for the checkpoint of step N: checkpoint-N


def fingerprint(params: dict, files: list[Path]) -> dict:
    """What a run trains from: its params and the sha256 of its input files."""
    digest = hashlib.sha256()
    for f in sorted(files):
        digest.update(Path(f).read_bytes())
    return {**params, "inputs_sha256": digest.hexdigest()}


@dataclass(frozen=True)
class ResumePoint:
    path: Path  # the checkpoint-<step> folder, as Trainer.train(resume_from_checkpoint=…) takes it
    step: int


@dataclass(frozen=True)
class Checkpoints:
    folder: Path
    fingerprint: dict

    def resume_point(self) -> ResumePoint | None:
        """The last complete checkpoint of an interrupted run with this fingerprint, if any (reads only).

        The Trainer writes a checkpoint's files one by one and trainer_state.json last, so a run killed while
        saving leaves a folder without it: that one is skipped for the one before.
        """
        marker = self.folder / FINGERPRINT
        if not (self.folder.is_dir() and marker.exists() and not (self.folder / COMPLETE).exists()
                and json.loads(marker.read_text()) == self.fingerprint):
            return None
        points = [ResumePoint(d, int(d.name.removeprefix(PREFIX))) for d in self.folder.glob(PREFIX + "*")
                  if d.name.removeprefix(PREFIX).isdigit() and (d / "trainer_state.json").exists()]
        return max(points, key=lambda r: r.step, default=None)

    def prepare(self) -> ResumePoint | None:
        """Keep the checkpoints of an interrupted run with this fingerprint; otherwise empty the folder.

        Called once per stage, before any training worker starts (the workers only call resume_point).
        """
        resume = self.resume_point()
        if resume is None:  # other params or data, or a finished run being re-run (e.g. after a code change)
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            write_json(self.folder / FINGERPRINT, self.fingerprint)
        return resume

    def finish(self) -> None:
        """Mark the run finished: its checkpoints are no longer a resume point."""
        (self.folder / COMPLETE).touch()
