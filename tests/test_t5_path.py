"""The paper's path on a pretrained T5 checkpoint: which parameters DDRO trains, docid tokens that
leave the tokenizer alone, and one explicit precision for training, reference and search."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from ddro.cli import main
from ddro.collections import load_collection
from ddro.docids import DocidConfig, build_docids
from ddro.errors import DdroError
from ddro.models import DocidModel, build_docid_model, get_preset
from ddro.models.presets import StageConfig
from ddro.pipeline import run_docid_config
from ddro.retrieval import GenerativeRetriever
from ddro.training.ddro import DDROConfig, DDROTrainer, PairDataset, pair_collator, precompute_reference
from ddro.training.negatives import Pair
from ddro.training.selection import PairLoss
from ddro.training.sft import DocidTrainer, SFTConfig, train_sft

from conftest import write_beir, write_tiny_t5


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    """The 40-document collection, a tiny T5 checkpoint folder, and the tiny preset on that checkpoint."""
    root = tmp_path_factory.mktemp("t5")
    collection = load_collection(write_beir(root / "beir", n_docs=40), test_fraction=0.3)
    checkpoint = write_tiny_t5(root / "ckpt")
    return collection, checkpoint, get_preset("tiny", model=str(checkpoint))


def pq_model(paper, **preset_fields):
    collection, _, preset = paper
    preset = preset.with_fields(**preset_fields)
    return build_docid_model(preset, build_docids(collection, DocidConfig(**preset.docid_plan.docids)), None)


# --- item 2: DDRO's parameter groups --------------------------------------------------------

def optimizer_groups(docid_model, encoder_lr_scale):
    args = SFTConfig(save_strategy="no").for_stage("unused", StageConfig(1, 1e-3, 4), 0)
    trainer = DocidTrainer(model=docid_model.model, args=args, encoder_lr_scale=encoder_lr_scale)
    return [({id(p) for p in group["params"]}, group["lr"]) for group in trainer.create_optimizer().param_groups]


def test_the_shared_embedding_learns_at_the_full_rate_and_the_encoder_layers_at_the_scaled_one(paper):
    model = pq_model(paper)
    (full, full_lr), (scaled, scaled_lr) = optimizer_groups(model, 0.0)
    t5 = model.model
    assert full_lr == 1e-3 and scaled_lr == 0.0
    assert id(t5.shared.weight) in full and id(t5.get_output_embeddings().weight) in full
    assert {id(p) for p in t5.decoder.parameters()} <= full
    assert scaled == {id(p) for name, p in t5.encoder.named_parameters() if name != "embed_tokens.weight"}


def test_the_cpu_preset_keeps_its_parameter_groups(paper):
    """MiniLM's encoder shares nothing with its decoder: the groups are the encoder's parameters and
    the rest, as before the shared embedding was told apart (the README's Cranfield numbers)."""
    collection, _, _ = paper
    table = build_docids(collection, DocidConfig(scheme="pq", encoder="lsa:16", pq_m=2, pq_k=8))
    model = build_docid_model(get_preset("cpu"), table, None)
    trainable = [p for p in model.model.parameters() if p.requires_grad]
    encoder = {id(p) for p in model.model.encoder.parameters()}
    expected = [({id(p) for p in trainable if id(p) not in encoder}, 1e-3),
                ({id(p) for p in trainable if id(p) in encoder}, 1e-3 * 0.03)]
    assert optimizer_groups(model, 0.03) == expected


def test_pair_loss_encodes_again_when_the_shared_embedding_changes(paper):
    collection, _, _ = paper
    model = pq_model(paper)
    pairs = [Pair(f"q{i}", collection.docs[i].title, i, (i + 9) % 40) for i in range(6)]
    cached = PairLoss(model, pairs, 0.4, "sigmoid")
    cached()
    with torch.no_grad():  # what a DDRO step with the encoder's layers fixed does to the query rows
        model.model.shared.weight.mul_(1.5)
    fresh = PairLoss(model, pairs, 0.4, "sigmoid")
    assert torch.equal(cached.logps(), fresh.logps())


# --- item 3: docid tokens never change the tokenizer -------------------------------------------

def test_text_docids_leave_query_tokenization_alone(paper):
    """Title docids in MiniLM's WordPiece pieces, which the T5 tokenizer lacks, get embedding rows
    of their own; the model's tokenizer cuts queries as before (it used to gain them as added tokens
    and cut "what about wing" around them)."""
    collection, checkpoint, preset = paper
    from transformers import AutoTokenizer

    queries = [q.text for q in collection.queries] + [d.text for d in collection.docs[:5]]
    before = AutoTokenizer.from_pretrained(checkpoint)(queries)["input_ids"]
    table = build_docids(collection, DocidConfig(scheme="title", tokenizer="minilm"))
    model = build_docid_model(preset, table, None)
    assert model.tokenizer(queries)["input_ids"] == before
    base = len(model.tokenizer)  # the checkpoint's vocabulary: as many embedding rows as tokens
    new_rows = model.docid_token_ids[model.docid_token_ids >= base]
    assert len(new_rows) == len(set(new_rows.tolist())) > 0 and model.decoder_vocab_size == base + len(new_rows)


def test_text_schemes_under_a_pretrained_model_use_its_tokenizer(paper):
    collection, checkpoint, preset = paper
    assert run_docid_config(preset, "title", 0, 40).tokenizer == str(checkpoint)
    assert run_docid_config(preset.with_fields(docids=preset.docid_plan.docids | {"tokenizer": "minilm"}), "url", 0, 40).tokenizer == "minilm"
    assert run_docid_config(get_preset("cpu"), "title", 0, 40).tokenizer == "minilm"
    table = build_docids(collection, run_docid_config(preset, "title", 0, 40))
    model = build_docid_model(preset, table, None)
    # Every docid token is one of the model's own subwords, at its own id: no new rows.
    assert model.decoder_vocab_size == len(model.tokenizer)
    assert model.tokenizer.convert_ids_to_tokens(model.docid_token_ids.tolist()) == table.vocab


def test_a_pretrained_model_with_new_docid_rows_saves_and_loads(paper, tmp_path):
    collection, _, _ = paper
    model = pq_model(paper)
    queries = collection.queries[:3]
    scores = GenerativeRetriever(model).score_all(queries, progress=False)
    model.save(tmp_path / "m")
    loaded = DocidModel.load(tmp_path / "m")
    assert loaded.decoder_vocab_size == model.decoder_vocab_size and len(loaded.tokenizer) == len(model.tokenizer)
    np.testing.assert_array_equal(GenerativeRetriever(loaded).score_all(queries, progress=False), scores)


# --- item 6: one explicit precision ------------------------------------------------------------

def test_fp16_and_unknown_precisions_are_refused():
    from ddro.precision import check_precision

    with pytest.raises(DdroError, match="overflow"):
        check_precision("fp16")
    with pytest.raises(DdroError, match="choose from"):
        check_precision("fp8")
    assert get_preset("t5-base").precision == "bf16" and get_preset("cpu").precision == "fp32"


@pytest.mark.parametrize("environment", [None, "bf16"])
def test_a_model_scores_after_training_as_when_loaded_again(paper, tmp_path, monkeypatch, environment):
    """After `Trainer.train()` the model's forward is the plain one: it scores exactly as its saved
    weights loaded afresh, under either precision. Accelerate's mixed precision wrapped `forward`
    for good (bf16 on GPUs by default, or by `accelerate launch --mixed_precision bf16`)."""
    if environment:
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", environment)
    collection, _, _ = paper
    model = pq_model(paper, precision="bf16")
    examples = [(d.title, i) for i, d in enumerate(collection.docs)]
    preset = replace(get_preset("tiny"), stages={name: StageConfig(1, 1e-3, 16) for name in ("index", "pseudo", "query")})
    train_sft(model, {"index": examples}, preset, tmp_path / "training", config=SFTConfig(disable_tqdm=True))
    assert "_original_forward" not in vars(model.model)
    model.save(tmp_path / "m")
    loaded = DocidModel.load(tmp_path / "m")
    assert loaded.precision == "bf16"
    queries = collection.queries[:4]
    for precision in ("bf16", "fp32"):
        model.precision = loaded.precision = precision
        trained = GenerativeRetriever(model).score_all(queries, progress=False)
        np.testing.assert_array_equal(trained, GenerativeRetriever(loaded).score_all(queries, progress=False))


def test_the_reference_equals_the_policy_at_step_0_under_bf16(paper, tmp_path):
    """Reference log-probabilities and the policy's first step run at one precision: the first
    step's rewards (beta times policy minus reference) are zero."""
    collection, _, _ = paper
    model = pq_model(paper, precision="bf16")
    pairs = [Pair(f"q{i}", collection.docs[i].title, i, (i + 11) % 40) for i in range(16)]
    dataset = PairDataset(pairs, model)
    precompute_reference(model, dataset, batch_size=16)
    args = DDROConfig(output_dir=str(tmp_path / "t"), num_train_epochs=1, learning_rate=1e-3,
                      per_device_train_batch_size=16, disable_tqdm=True, logging_steps=1,
                      train_sampling_strategy="sequential")
    trainer = DDROTrainer(model=model.model, args=args, train_dataset=dataset, data_collator=pair_collator(model),
                          precision=model.precision)
    trainer.train()
    first = next(h for h in trainer.state.log_history if "rewards/chosen" in h)
    assert first["rewards/chosen"] == 0.0 and first["rewards/rejected"] == 0.0


# --- the paper's path in small, through the command line -----------------------------------------

def test_a_local_t5_checkpoint_through_sft_ddro_search_and_eval(tmp_path, capsys):
    beir = write_beir(tmp_path / "beir", n_docs=40)
    checkpoint = write_tiny_t5(tmp_path / "ckpt")
    common = ["--collection", str(beir)]
    assert main(["docids", *common, "--scheme", "pq", "--encoder", "lsa:16", "--pq-m", "2", "--pq-k", "8",
                 "--out", str(tmp_path / "docids")]) == 0
    assert main(["train", "sft", *common, "--docids", str(tmp_path / "docids"), "--out", str(tmp_path / "sft"),
                 "--preset", "tiny", "--model", str(checkpoint), "--precision", "bf16"]) == 0
    sft_meta = json.loads((tmp_path / "sft" / "ddro_model.json").read_text())
    assert sft_meta["architecture"] == "pretrained" and sft_meta["precision"] == "bf16"
    assert main(["train", "ddro", *common, "--model", str(tmp_path / "sft"), "--out", str(tmp_path / "ddro"),
                 "--epochs", "1", "--per-query", "2", "--pseudo-queries", "20", "--eval-steps", "2",
                 "--validation-beams", "4", "--bands", "1-10,11-40", "--band-proportions", "1,1"]) == 0
    assert json.loads((tmp_path / "ddro" / "ddro_model.json").read_text())["precision"] == "bf16"  # SFT's
    assert main(["train", "ddro", *common, "--model", str(tmp_path / "sft"), "--out", str(tmp_path / "ddro32"),
                 "--epochs", "1", "--per-query", "2", "--pseudo-queries", "20", "--eval-steps", "2",
                 "--validation-beams", "4", "--bands", "1-10,11-40", "--band-proportions", "1,1",
                 "--precision", "fp32"]) == 0
    assert json.loads((tmp_path / "ddro32" / "ddro_model.json").read_text())["precision"] == "fp32"
    summary = json.loads((tmp_path / "ddro" / "ddro_summary.json").read_text())
    assert summary["pairs"] > 0 and summary["steps"] > 0
    run = tmp_path / "ddro.trec"
    assert main(["search", *common, "--model", str(tmp_path / "ddro"), "--out", str(run), "--k", "10",
                 "--beams", "10"]) == 0
    assert "bf16 precision" in capsys.readouterr().out  # what the model was trained with
    assert main(["search", *common, "--model", str(tmp_path / "ddro"), "--out", str(tmp_path / "fp32.trec"),
                 "--k", "10", "--beams", "10", "--precision", "fp32"]) == 0
    assert "fp32 precision" in capsys.readouterr().out
    lines = run.read_text().splitlines()
    assert lines and all(len(line.split()) == 6 for line in lines)
    assert main(["eval", *common, "--run", str(run)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["queries"] > 0 and 0.0 <= result["measures"]["RR@10"] <= 1.0


def test_ddro_run_writes_title_docids_in_the_checkpoints_tokenizer(tmp_path):
    beir = write_beir(tmp_path / "beir", n_docs=40)
    checkpoint = write_tiny_t5(tmp_path / "ckpt")
    out = tmp_path / "run"
    assert main(["run", "--collection", str(beir), "--out", str(out), "--preset", "tiny", "--model", str(checkpoint),
                 "--scheme", "title", "--no-ddro", "--k", "10", "--beams", "10"]) == 0
    assert json.loads((out / "config.json").read_text())["docids"]["tokenizer"] == str(checkpoint)
    model = DocidModel.load(out / "model")
    assert model.decoder_vocab_size == len(model.tokenizer)  # no new rows: every piece is the model's own
