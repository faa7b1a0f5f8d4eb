"""Slow: the paper's path end to end on Cranfield, in the `t5-base` preset's shape but tiny.

GTR-style document embeddings (a sentence-transformers checkpoint: T5 encoder, mean pooling,
Dense, normalization) -> PQ 24 x 256 docids -> the three SFT stages on a pretrained T5 checkpoint
(`--preset t5-base --model DIR`, bf16 autocast as the preset says) -> DDRO -> search -> eval, each
through the CLI. The models are random and tiny, so the check is that every step runs on real data
and hands the next a consistent folder, not what the numbers are.
"""

import json

import numpy as np
import pytest

from ddro.cli import main
from ddro.collections import load_collection

from conftest import DATA, needs_data, write_sentence_transformer, write_tiny_t5

pytestmark = [pytest.mark.slow, needs_data("cranfield")]
CRANFIELD = str(DATA / "cranfield")


def test_t5_base_shaped_path_runs_on_cranfield(tmp_path, capsys):
    collection = load_collection(CRANFIELD)
    texts = [f"{d.title} {d.text}" for d in collection.docs]
    encoder = write_sentence_transformer(tmp_path / "gtr", texts=texts, dim=48)
    checkpoint = write_tiny_t5(tmp_path / "t5", texts=texts)

    assert main(["docids", "--collection", CRANFIELD, "--scheme", "pq", "--pq-m", "24", "--pq-k", "256",
                 "--encoder", f"hf:{encoder}", "--out", str(tmp_path / "docids")]) == 0
    stats = json.loads((tmp_path / "docids" / "stats.json").read_text())
    assert stats["documents"] == 1400 and stats["options"]["encoder"] == f"hf:{encoder}"
    codes = np.load(tmp_path / "docids" / "codes.npy")
    assert (codes[:, :24] >= 0).all()  # 24 PQ tokens per docid (a <dup_k> may follow)

    assert main(["train", "sft", "--collection", CRANFIELD, "--docids", str(tmp_path / "docids"),
                 "--out", str(tmp_path / "sft"), "--preset", "t5-base", "--model", str(checkpoint),
                 "--index-epochs", "0.05", "--pseudo-epochs", "0.05", "--query-epochs", "1"]) == 0
    sft = json.loads((tmp_path / "sft" / "ddro_model.json").read_text())
    assert sft["architecture"] == "pretrained" and sft["precision"] == "bf16"
    assert sft["split"]["test_queries"] == 75

    assert main(["train", "ddro", "--collection", CRANFIELD, "--model", str(tmp_path / "sft"),
                 "--out", str(tmp_path / "ddro"), "--epochs", "0.2", "--pseudo-queries", "50",
                 "--eval-steps", "10", "--validation-beams", "5"]) == 0
    summary = json.loads((tmp_path / "ddro" / "ddro_summary.json").read_text())
    assert summary["pairs"] > 0 and summary["validation_queries"] > 0

    run = tmp_path / "ddro.trec"
    assert main(["search", "--collection", CRANFIELD, "--model", str(tmp_path / "ddro"), "--out", str(run),
                 "--k", "10", "--beams", "10"]) == 0
    lines = run.read_text().splitlines()
    assert len({line.split()[0] for line in lines}) == 75 and all(len(line.split()) == 6 for line in lines)
    capsys.readouterr()

    assert main(["eval", "--collection", CRANFIELD, "--run", str(run)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["queries"] == 75 and 0.0 <= result["measures"]["RR@10"] <= 1.0
