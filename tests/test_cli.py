"""`ddro docids` and `ddro inspect` end to end: outputs, summaries and one-line errors."""

import json
import subprocess
import sys

import pytest

from ddro.cli import main

from conftest import write_beir

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
    assert {p.name for p in out.iterdir()} == {"table.json", "vocab.json", "codes.npy", "docids.tsv", "collisions.tsv",
                                             "codebook", "checksums.json", "stats.json", "manifest.json"}
    assert {p.name for p in (out / "codebook").iterdir()} == {"codebook.json", "centroids.npy"}
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
    from ddro.docids import DocidConfig

    parser = argparse.ArgumentParser()
    add_dataclass_options(parser, DocidConfig, skip=("scheme",))
    options = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert set(options) == {f.name for f in dataclasses.fields(DocidConfig)} - {"scheme"}
    assert all("(default: " in a.help for a in options.values())


def ddro_parser():
    from ddro.cli import build_parser

    parser = build_parser()
    train = next(a for a in parser._actions if a.dest == "command").choices["train"]
    return next(a for a in train._actions if a.dest == "method").choices["ddro"]


def test_every_ddro_config_field_is_an_option_stating_its_default():
    import dataclasses

    from ddro.training.ddro import DDROConfig

    options = {a.dest: a for a in ddro_parser()._actions if a.dest != "help"}
    # warmup_ratio: a field of transformers 5.2 whose flag is warmup_steps' alias `--warmup-ratio`.
    unoffered = {"output_dir", "warmup_ratio"}
    assert {f.name for f in dataclasses.fields(DDROConfig) if f.init} - unoffered <= set(options)
    assert all("(default: %(default)s)" in options[f.name].help for f in dataclasses.fields(DDROConfig)
               if f.init and f.name not in unoffered)
    assert options["warmup_steps"].option_strings[-1] == "--warmup-ratio"
    # Today's flags of the phase still reach their fields.
    for flag, field in (("--epochs", "num_train_epochs"), ("--batch-size", "per_device_train_batch_size"),
                        ("--warmup-ratio", "warmup_steps"), ("--learning-rate", "learning_rate"),
                        ("--band-proportions", "band_proportions"), ("--validation-measure", "validation_measure")):
        assert flag in options[field].option_strings


def test_train_ddro_parses_the_trainers_own_options_into_its_config():
    from ddro.cli import build_parser, config_from_args
    from ddro.training.ddro import DDROConfig

    args = build_parser().parse_args(["train", "ddro", "--collection", "c", "--model", "m", "--out", "o",
                                      "--gradient_accumulation_steps", "2", "--report_to", "none", "--epochs", "0.5",
                                      "--bands", "1-10,11-40", "--band-proportions", "1,2", "--seed", "3"])
    config = config_from_args(DDROConfig, args)
    assert isinstance(config, DDROConfig)
    assert config.gradient_accumulation_steps == 2 and config.report_to == [] and config.num_train_epochs == 0.5
    assert config.band_ranges() == ((1, 10), (11, 40)) and config.proportions() == (1.0, 2.0)
    assert config.seed == config.data_seed == 3 and config.mixed_precision == "no"
    # The defaults are the phase's own, not TrainingArguments'.
    default = config_from_args(DDROConfig, build_parser().parse_args(["train", "ddro", "--collection", "c", "--model",
                                                                       "m", "--out", "o"]))
    assert (default.learning_rate, default.per_device_train_batch_size, default.warmup_steps,
            default.lr_scheduler_type.value, default.save_strategy.value, default.save_steps, default.logging_steps) == (
        1e-5, 16, 0.1, "cosine", "steps", 100, 12)


def test_a_bad_ddro_setting_names_its_flag(beir_dir, tmp_path, capsys):
    from ddro.errors import OptionError
    from ddro.training.ddro import DDROConfig

    with pytest.raises(OptionError, match="^band_proportions '1,x': expected numbers"):
        DDROConfig(band_proportions="1,x")
    out = tmp_path / "m"
    assert main(["train", "ddro", "--collection", str(beir_dir), "--model", "m", "--out", str(out),
                 "--band-proportions", "1,x"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "ddro: error: --band-proportions '1,x': expected numbers like 1,1,1"]
    assert main(["train", "ddro", "--collection", str(beir_dir), "--model", "m", "--out", str(out),
                 "--epochs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "ddro: error: --epochs must be positive (got 0.0)"
    assert not out.exists()


def test_serve_without_the_serve_extra_is_one_line(monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if not installed
    assert main(["serve", "--model", str(tmp_path), "--collection", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "ddro: error: ddro serve needs the serve extra: pip install 'ddro[serve]'"


@pytest.mark.parametrize("args,message", [
    (["run", "--k", "0"], "argument --k: must be at least 1, got 0"),
    (["run", "--beams", "0"], "argument --beams: must be at least 1, got 0"),
    (["run", "--beams", "-3"], "argument --beams: must be at least 1, got -3"),
    (["run", "--index-epochs", "-1"], "argument --index-epochs: must be at least 0, got -1"),
    (["run", "--query-learning-rate", "0"], "argument --query-learning-rate: must be above 0, got 0"),
    (["run", "--pseudo-batch-size", "0"], "argument --pseudo-batch-size: must be at least 1, got 0"),
    (["run", "--test-fraction", "1.5"], "argument --test-fraction: must be above 0 and at most 1, got 1.5"),
    (["docids", "--scheme", "pq", "--out", "o", "--collection", "c", "--test-fraction", "2"],
     "argument --test-fraction: must be above 0 and at most 1, got 2"),
    (["run", "--replay", "nan"], "argument --replay: expected a finite number, got 'nan'"),
    (["run", "--sft-save-steps", "0"], "argument --sft-save-steps: must be above 0, got 0"),
    (["run", "--k", "ten"], "argument --k: expected an integer, got 'ten'"),
    (["search", "--model", "m", "--out", "r", "--k", "-5"], "argument --k: must be at least 1, got -5"),
    (["search", "--model", "m", "--out", "r", "--length-penalty", "nan"],
     "argument --length-penalty: expected a finite number, got 'nan'"),
    (["search", "--model", "m", "--out", "r", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["serve", "--model", "m", "--collection", "c", "--port", "70000"],
     "argument --port: must be at least 0 and at most 65535, got 70000"),
])
def test_out_of_range_options_are_usage_errors_before_any_work(beir_dir, tmp_path, capsys, monkeypatch, args, message):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if args[0] == "run":
        args = args + ["--collection", str(beir_dir), "--out", "out", "--preset", "tiny"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(message), err
    assert list(work.iterdir()) == []  # nothing written


def test_a_folder_in_use_is_refused_and_a_dead_writers_lock_is_taken_over(beir_dir, tmp_path, capsys):
    import socket
    import subprocess
    import sys

    from ddro.outputs import lock_path, output_lock

    out = tmp_path / "pq"
    args = ["docids", "--collection", str(beir_dir), "--scheme", "pq", "--out", str(out)]
    with output_lock(out):  # a live writer: this process
        assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in use by another ddro command (pid" in err[0] and str(lock_path(out)) in err[0]
    assert not out.exists() and not lock_path(out).exists()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock_path(out).write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname()}))
    assert main(args) == 0  # the writer that left the lock is gone
    assert out.is_dir() and not lock_path(out).exists()
    lock_path(out).write_text(json.dumps({"pid": 1, "host": "another-host"}))
    assert main(args + ["--overwrite"]) == 2  # another host's writer cannot be checked: refused
    assert "another-host" in capsys.readouterr().err


def test_a_run_file_is_as_readable_as_any_and_an_output_under_a_file_is_one_line(beir_dir, tmp_path, capsys):
    # (Malformed run files and what `ddro eval` says of them: tests/test_malformed_inputs.py.)
    import stat

    from ddro.runs import write_trec_run

    run = write_trec_run({"q1": [("d1", 1.0), ("d2", 0.5)]}, tmp_path / "ok.trec", "t")
    (tmp_path / "plain.txt").write_text("")  # what any file the user writes gets
    assert stat.S_IMODE(run.stat().st_mode) == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    (tmp_path / "a-file").write_text("")
    assert main(["docids", "--collection", str(beir_dir), "--scheme", "pq", "--out", str(tmp_path / "a-file" / "x")]) == 2
    assert "a-file is a file, not a folder" in capsys.readouterr().err


def test_a_failed_final_rename_leaves_no_complete_looking_folder(tmp_path, monkeypatch):
    import os

    from ddro.outputs import atomic_output_dir

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    real = os.replace

    def failing(src, dst):
        if str(src).endswith(f".partial-{os.getpid()}"):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError):
        with atomic_output_dir(tmp_path / "out", overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out" / "old.txt").read_text() == "old"


def test_a_model_of_another_collection_is_not_searched_and_deep_json_is_one_line(tiny, tmp_path, capsys):
    _, model = tiny
    model.save(tmp_path / "model")
    other = write_beir(tmp_path / "other", n_docs=25)
    assert main(["search", "--collection", str(other), "--model", str(tmp_path / "model"),
                 "--out", str(tmp_path / "r.trec")]) == 2
    assert "made for another collection" in capsys.readouterr().err and not (tmp_path / "r.trec").exists()
    with open(other / "queries.jsonl", "a") as fh:
        fh.write("[" * 200_000 + "]" * 200_000 + "\n")
    assert main(["inspect", "--collection", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "queries.jsonl:11: malformed JSON (nested too deep)" in err[0]
