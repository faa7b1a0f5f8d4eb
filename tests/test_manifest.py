"""Output folders written whole or kept for --resume (`outputs.resumable_output_dir`), and the
manifest that names each folder's inputs (`ddro.manifest`): a folder made from inputs that changed
since is refused with one line."""

import hashlib
import json

import pytest

from ddro.cli import main
from ddro.errors import DdroError
from ddro.outputs import resumable_output_dir, work_dir


def test_a_finished_folder_appears_in_one_rename_and_replaces_the_old_one_only_then(tmp_path):
    out = tmp_path / "out"
    with resumable_output_dir(out) as work:
        (work / "a.txt").write_text("first")
        assert work == tmp_path / ".out.partial" and not out.exists()
    assert (out / "a.txt").read_text() == "first" and not work_dir(out).exists()
    with resumable_output_dir(out, overwrite=True) as work:
        (work / "a.txt").write_text("second")
        assert (out / "a.txt").read_text() == "first"  # the old folder stays until the new one is complete
    assert (out / "a.txt").read_text() == "second" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_interrupted_folder_is_kept_for_resume_and_refused_without_it(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with resumable_output_dir(out) as work:
            (work / "checkpoint").write_text("step 7")
            raise KeyboardInterrupt
    assert (work_dir(out) / "checkpoint").is_file() and not out.exists()
    with pytest.raises(DdroError, match=r"\.out\.partial \(pass --resume to continue it, or --overwrite"):
        with resumable_output_dir(out):
            pass
    with resumable_output_dir(out, resume=True) as work:
        assert (work / "checkpoint").read_text() == "step 7"
    assert (out / "checkpoint").is_file()


def test_a_user_error_removes_a_fresh_folder_and_a_finished_one_always_comes_back(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(DdroError):
        with resumable_output_dir(out) as work:
            (work / "half").write_text("")
            raise DdroError("bad input")
    assert list(tmp_path.iterdir()) == []  # nothing left: the inputs were wrong
    with resumable_output_dir(out) as work:
        (work / "result").write_text("done")
    with pytest.raises(DdroError):
        with resumable_output_dir(out, resume=True) as work:
            assert (work / "result").is_file() and not out.exists()  # continued in the work folder
            raise DdroError("other settings")
    assert (out / "result").read_text() == "done" and not work_dir(out).exists()
    with pytest.raises(KeyboardInterrupt):
        with resumable_output_dir(out, resume=True) as work:
            (work / "checkpoint").write_text("step 3")
            raise KeyboardInterrupt
    # Stopped, a finished folder is back too, with the checkpoint for the next --resume.
    assert (out / "result").is_file() and (out / "checkpoint").is_file() and not work_dir(out).exists()


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def docids(collection, out) -> list[str]:
    return ["docids", "--collection", str(collection), "--out", str(out), "--scheme", "pq", "--encoder", "lsa:16",
            "--pq-m", "2", "--pq-k", "8"]


def test_the_manifest_names_the_command_settings_versions_and_every_input_file(beir_dir, tmp_path):
    args = docids(beir_dir, tmp_path / "pq")
    assert main(args) == 0
    manifest = json.loads((tmp_path / "pq" / "manifest.json").read_text())
    assert manifest["command"] == ["ddro", *args] and manifest["settings"]["scheme"] == "pq"
    files = sorted(p for p in beir_dir.rglob("*") if p.is_file())
    assert manifest["inputs"]["collection"] == {str(p.relative_to(beir_dir)): sha256(p) for p in files}
    assert manifest["versions"]["torch"] and "commit" in manifest["ddro_source"]


def test_a_table_of_an_edited_collection_is_refused_with_the_file_named(beir_dir, tmp_path, capsys):
    assert main(docids(beir_dir, tmp_path / "pq")) == 0
    corpus = beir_dir / "corpus.jsonl"
    corpus.write_text(corpus.read_text().replace("experiment number 3 ", "experiment number three "))
    capsys.readouterr()
    assert main(["train", "sft", "--collection", str(beir_dir), "--docids", str(tmp_path / "pq"), "--out",
                 str(tmp_path / "model"), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the docid table was made from another collection" in err[0]
    assert "corpus.jsonl differs" in err[0] and not (tmp_path / "model").exists()


def test_resume_refuses_a_run_whose_collection_changed_and_leaves_it_as_it_was(beir_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "--collection", str(beir_dir), "--out", str(out), "--preset", "tiny", "--no-ddro"]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["collection"]["queries.jsonl"] == sha256(beir_dir / "queries.jsonl")
    for folder in ("docids", "model"):  # the folders a later command may start from carry theirs too
        assert json.loads((out / folder / "manifest.json").read_text())["inputs"]["collection"] == \
            manifest["inputs"]["collection"]
    before = (out / "metrics.json").read_text()
    queries = beir_dir / "queries.jsonl"
    queries.write_text(queries.read_text().replace("what about heat flow", "heat flow, please"))
    capsys.readouterr()
    assert main(args + ["--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "queries.jsonl differs" in err[0]
    assert (out / "metrics.json").read_text() == before and not work_dir(out).exists()
