"""Shared caches: what one process builds, another that asks at the same moment waits for and reuses."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from verifier.paths import made_once


def _make_slowly(folder: Path) -> None:
    folder.mkdir()
    with open(folder.parent / "makes.log", "a") as log:
        log.write("made\n")
    time.sleep(0.5)
    (folder / "done").write_text("ok")


def _ask(out: str) -> None:
    target = Path(out)
    made_once(target, (target / "done").is_file, _make_slowly)


def test_two_processes_asking_at_once_make_the_cache_once(tmp_path):
    out = tmp_path / "thing"
    workers = [multiprocessing.get_context("fork").Process(target=_ask, args=(str(out),)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert (out / "done").read_text() == "ok" and not out.with_name("thing.partial").exists()
    assert (tmp_path / "makes.log").read_text() == "made\n"


def test_a_half_made_folder_left_by_a_dead_process_is_made_again(tmp_path):
    out = tmp_path / "thing"
    (tmp_path / "thing.partial").mkdir()  # a process died while making it
    assert made_once(out, (out / "done").is_file, _make_slowly) == out
    assert (out / "done").is_file()
