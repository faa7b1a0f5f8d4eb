"""`ddro docids` and `ddro inspect` end to end: outputs, summaries and one-line errors."""

import json
import subprocess
import sys

import pytest

from ddro.cli import main

STATS_KEYS = {"documents", "unique_docids", "collisions", "docid_length", "vocab_size", "build_seconds"}


def test_docids_writes_table_stats_and_summary(beir_dir, tmp_path, capsys):
    out = tmp_path / "pq"
    assert main(["docids", "--collection", str(beir_dir), "--scheme", "pq", "--encoder", "lsa:16",
                 "--pq-m", "4", "--pq-k", "8", "--out", str(out)]) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith("docids: tiny scheme=pq: 40 documents")
    stats = json.loads((out / "stats.json").read_text())
    assert STATS_KEYS <= set(stats)
    assert stats["documents"] == 40 and stats["unique_docids"] == 40
    assert stats["collection"]["split"] == {"rule": "given(qrels/train.tsv, qrels/test.tsv)", "train_queries": 5,
                                            "test_queries": 5, "unjudged_queries": 0}
    assert stats["options"]["pq_m"] == 4 and stats["options"]["encoder"] == "lsa:16"
    assert {p.name for p in out.iterdir()} == {"table.json", "vocab.json", "codes.npy", "docids.tsv", "collisions.tsv", "stats.json"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pq", "tiny"]  # no leftovers beside it


def test_existing_output_needs_overwrite(beir_dir, tmp_path, capsys):
    out = tmp_path / "t"
    args = ["docids", "--collection", str(beir_dir), "--scheme", "atomic", "--out", str(out)]
    assert main(args) == 0
    assert main(args) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--test-fraction", "1.0"]) == 0
    assert json.loads((out / "stats.json").read_text())["collection"]["split"]["test_queries"] == 10


@pytest.mark.parametrize("args,message", [
    (["--collection", "{missing}"], "collection folder not found"),
    (["--collection", "{beir}", "--encoder", "nope"], "unknown encoder"),
    (["--collection", "{beir}", "--test-fraction", "2"], "between 0 and 1"),
    (["--collection", "{beir}", "--pq-m", "99", "--encoder", "lsa:16"], "sub-spaces exceed"),
])
def test_user_errors_are_one_line_exit_2_and_leave_no_output(beir_dir, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    args = [a.format(missing=tmp_path / "missing", beir=beir_dir) for a in args]
    assert main(["docids", "--scheme", "pq", "--out", str(out)] + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ddro: error:") and message in err[0]
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_failure_while_writing_leaves_no_half_written_folder(beir_dir, tmp_path, monkeypatch):
    from ddro.docids.table import DocidTable

    def broken_save(self, folder):
        (folder / "table.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(DocidTable, "save", broken_save)
    with pytest.raises(OSError):
        main(["docids", "--collection", str(beir_dir), "--scheme", "atomic", "--out", str(tmp_path / "t")])
    assert not (tmp_path / "t").exists() and not list(tmp_path.glob(".t.*"))


def test_console_script_reports_bad_line_without_traceback(beir_dir, tmp_path):
    with open(beir_dir / "corpus.jsonl", "a") as fh:
        fh.write('{"_id": "d0", "text": "duplicate"}\n')
    proc = subprocess.run([sys.executable, "-m", "ddro.cli", "docids", "--collection", str(beir_dir),
                           "--scheme", "naive", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"ddro: error: {beir_dir / 'corpus.jsonl'}:41: duplicate document id 'd0' (first at {beir_dir / 'corpus.jsonl'}:1)"]
    assert not (tmp_path / "o").exists()


def test_unknown_scheme_is_a_usage_error(beir_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["docids", "--collection", str(beir_dir), "--scheme", "bogus", "--out", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'bogus'" in err[0]


def test_inspect_prints_counts_and_split(beir_dir, capsys):
    assert main(["inspect", "--collection", str(beir_dir)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["documents"] == 40 and info["split"]["train_queries"] == 5


@pytest.mark.parametrize("args,message", [
    (["--validation-measure", "nope@10"], "expected loss or an ir_measures measure"),
    (["--band-proportions", "1,x"], "expected numbers"),
    (["--bands", "1-10,11-20", "--band-proportions", "1"], "gives 1 numbers for 2 bands"),
])
def test_ddro_option_errors_are_one_line_exit_2(beir_dir, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["run", "--collection", str(beir_dir), "--out", str(out), "--preset", "tiny"] + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()


def test_every_dataclass_option_states_its_default():
    import argparse
    import dataclasses

    from ddro.cli import add_dataclass_options
    from ddro.training.ddro import DDROConfig

    parser = argparse.ArgumentParser()
    skip = ("bands", "band_proportions", "seed")  # as `ddro train ddro` does: parsed by hand
    add_dataclass_options(parser, DDROConfig, skip=skip)
    options = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert set(options) == {f.name for f in dataclasses.fields(DDROConfig)} - set(skip)
    assert all("(default: " in a.help for a in options.values())
    assert options["dropout"].help.endswith("(default: off)")
    assert options["precompute_ref_log_probs"].help == "(default: on)"
