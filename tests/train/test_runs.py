"""Run folders: created atomically, unique default names, explicit names never reused."""
import threading

import pytest

from snn.train.runs import create_run_folder, remove_if_empty


def test_default_names_get_a_suffix_when_taken(tmp_path):
    base = tmp_path / "runs" / "digits-events-20250101-120000"
    assert create_run_folder(base, unique=True) == base          # parents created
    assert create_run_folder(base, unique=True) == base.with_name(base.name + "-2")
    assert create_run_folder(base, unique=True) == base.with_name(base.name + "-3")
    assert sorted(p.name for p in base.parent.iterdir()) == [base.name, base.name + "-2", base.name + "-3"]


def test_an_explicit_existing_folder_is_an_error(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FileExistsError, match=r"run already exists: pass --resume .* or choose another --out"):
        create_run_folder(tmp_path / "run")
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(FileExistsError, match=r"run holds a run: pass --resume"):
        create_run_folder(tmp_path / "run")


def test_runs_started_at_once_never_share_a_folder(tmp_path):
    base, got, start = tmp_path / "runs" / "same-second", [], threading.Barrier(8)

    def one():
        start.wait()
        got.append(create_run_folder(base, unique=True))
    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and len(set(got)) == 8


def test_remove_if_empty_keeps_a_folder_with_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.json").write_text("{}")
    assert remove_if_empty(tmp_path / "a") and not (tmp_path / "a").exists()
    assert not remove_if_empty(tmp_path / "b") and (tmp_path / "b" / "metrics.json").exists()
    assert not remove_if_empty(tmp_path / "missing")
