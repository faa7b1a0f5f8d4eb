"""`--untied-output` is refused where the model would keep a tied output head anyway."""

import pytest

from ddro.cli import main
from ddro.errors import DdroError
from ddro.models import build_docid_model, get_preset

from conftest import write_query_generator


def test_untied_output_is_refused_for_a_pretrained_checkpoint(tiny, tmp_path):
    collection, model = tiny
    checkpoint = write_query_generator(tmp_path / "t5")  # any local seq2seq checkpoint
    texts = [d.text for d in collection.docs]
    assert build_docid_model(get_preset("tiny", str(checkpoint)), model.table, texts).architecture == "pretrained"
    with pytest.raises(DdroError, match="--untied-output applies to the cpu preset's decoder, not to the pretrained"):
        build_docid_model(get_preset("tiny", str(checkpoint), tie_output=False), model.table, texts)


def test_untied_output_is_refused_for_t5_presets(beir_dir, tmp_path, capsys):
    assert main(["docids", "--collection", str(beir_dir), "--scheme", "atomic", "--out", str(tmp_path / "d")]) == 0
    assert main(["train", "sft", "--collection", str(beir_dir), "--docids", str(tmp_path / "d"), "--out",
                 str(tmp_path / "m"), "--preset", "tiny", "--untied-output"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ddro:")]
    assert err == ["ddro: error: --untied-output: the tiny preset's T5 always ties its output head to the embeddings "
                   "in transformers 5; the option applies to the cpu preset's decoder only"]
