"""DDRO on a tiny model: the loss through the model against plain PyTorch, negatives, training."""

import copy

import numpy as np
import pytest
import torch

from ddro.collections import PseudoQuery, Query
from ddro.docids.table import DocidTable
from ddro.models import get_preset
from ddro.training.ddro import DDROConfig, PairDataset, pair_collator, pair_logps, train_ddro, training_queries
from ddro.training.ddro_loss import LOSS_TYPES, ddro_loss
from ddro.training.negatives import NegativeConfig, Pair, draw_negatives, make_pairs, parse_bands

from conftest import bare_corpus, on_model_device, write_query_generator


def plain_logp(model, query_ids, labels):
    """log p(docid | query) by an explicit decoder input and a loop over the label tokens."""
    start = model.config.decoder_start_token_id
    tokens = [t for t in labels.tolist() if t != -100]
    decoder_input = torch.tensor([[start] + tokens[:-1]])
    logits = model(input_ids=query_ids.unsqueeze(0), decoder_input_ids=decoder_input).logits[0]
    logp = torch.log_softmax(logits, -1)
    return sum(logp[i, t] for i, t in enumerate(tokens))


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_loss_and_gradients_through_the_model_match_plain_pytorch(tiny, loss_type):
    collection, docid_model = tiny
    model = docid_model.model.train(False)
    reference = copy.deepcopy(model)
    with torch.no_grad():  # a reference that differs from the policy
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pairs = [Pair("q", collection.docs[i].title, i, (i + 7) % 30) for i in range(5)]
    dataset = PairDataset(pairs, docid_model)
    batch = pair_collator(docid_model)([dataset[i] for i in range(len(pairs))])
    with torch.no_grad():
        ref_c, ref_r = pair_logps(reference, batch)
    chosen, rejected = pair_logps(model, batch)
    loss = ddro_loss(chosen, rejected, ref_c, ref_r, 0.4, loss_type)[0].mean()
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True)

    plain = []
    for row in range(len(pairs)):
        ids = batch["input_ids"][row][batch["attention_mask"][row] == 1]
        pc = plain_logp(model, ids, batch["chosen_labels"][row])
        pr = plain_logp(model, ids, batch["rejected_labels"][row])
        with torch.no_grad():
            rc = plain_logp(reference, ids, batch["chosen_labels"][row])
            rr = plain_logp(reference, ids, batch["rejected_labels"][row])
        h = (pc - rc) - (pr - rr)
        plain.append({"sigmoid": -torch.nn.functional.logsigmoid(0.4 * h), "hinge": torch.relu(1 - 0.4 * h),
                      "ipo": (h - 1 / 0.8) ** 2}[loss_type])
    plain_loss = torch.stack(plain).mean()
    plain_grads = torch.autograd.grad(plain_loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True)
    assert torch.allclose(loss, plain_loss, atol=1e-5)
    for g, h in zip(grads, plain_grads):
        if g is None or h is None:
            assert g is None and h is None
        else:
            assert torch.allclose(g, h, atol=1e-5)


def test_negatives_respect_bands_and_exclusions():
    ranking = [f"d{i}" for i in range(1000)]
    config = NegativeConfig(per_query=6, bands=parse_bands("1-10,11-100,101-1000"), proportions=(1, 1, 1))
    picks = draw_negatives(ranking, {"d0", "d1", "d2"}, config, np.random.default_rng(0))
    ranks = sorted(int(d[1:]) for d in picks)
    assert len(picks) == 6 == len(set(picks)) and not {0, 1, 2} & set(ranks)
    assert sum(r < 10 for r in ranks) == 2 and sum(10 <= r < 100 for r in ranks) == 2 and sum(r >= 100 for r in ranks) == 2
    short = draw_negatives(ranking[:12], set(), config, np.random.default_rng(0))
    assert len(short) == 6  # bands 2 and 3 are nearly empty: refilled from what is left
    assert NegativeConfig(per_query=8, proportions=(2, 1, 1)).counts() == [4, 2, 2]


def test_pairs_never_use_a_relevant_document_or_its_docid():
    codes = np.array([[0, 1], [0, 1], [2, 3], [4, 5], [6, 7]])
    table = DocidTable("pq", ["a", "b", "c", "d", "e"], codes, [f"t{i}" for i in range(8)], True, collision_policy="share")
    pairs = make_pairs([Query("q", "text")], {"q": [0]}, {"q": ["b", "a", "c", "d", "e", "zzz"]}, table,
                       NegativeConfig(per_query=5, bands=((1, 10),), proportions=(1,)))
    assert {p.rejected for p in pairs} == {2, 3, 4}  # not a (relevant), not b (same docid), not unknown zzz
    assert all(p.chosen == 0 for p in pairs)


def test_per_positive_gives_every_relevant_document_its_own_negatives():
    codes = np.arange(40).reshape(20, 2)
    table = DocidTable("pq", [f"d{i}" for i in range(20)], codes, [f"t{i}" for i in range(40)], True)
    ranking = {"q": [f"d{i}" for i in range(20)]}
    relevant = {"q": [0, 5, 9]}
    per_query = make_pairs([Query("q", "text")], relevant, ranking, table, NegativeConfig(per_query=4, bands=((1, 20),),
                                                                                        proportions=(1,)))
    assert len(per_query) == 4 and {p.chosen for p in per_query} == {0, 5, 9}  # 4 negatives shared by 3 positives
    config = NegativeConfig(per_query=4, bands=((1, 20),), proportions=(1,), per_positive=True)
    pairs = make_pairs([Query("q", "text")], relevant, ranking, table, config)
    assert len(pairs) == 12 and len({p.rejected for p in pairs}) == 12  # 4 each, all distinct
    assert all(sum(p.chosen == c for p in pairs) == 4 for c in (0, 5, 9))
    assert not {p.rejected for p in pairs} & {0, 5, 9}


def test_validation_is_the_part_sft_held_out(tiny):
    from ddro.collections.base import validation_part
    from ddro.training.sft import stage_examples_for

    collection, model = tiny
    model = copy.copy(model)
    examples = stage_examples_for(collection, model, get_preset("tiny"))
    held = validation_part(collection.split.train, 0.2)
    assert model.validation_fraction == 0.2 and held
    kept = [q for q in collection.qrels if q.query_id in collection.split.train and q.query_id not in held and q.relevance > 0]
    assert len(examples["query"]) == len(kept) * get_preset("tiny").query_repeats
    train, validation, _ = training_queries(collection, model, DDROConfig())
    assert {q.query_id for q in validation} == held
    train, validation, positives = training_queries(collection, model, DDROConfig(validation_fraction=0.5))
    test_ids = set(collection.split.test)
    assert validation and train and not ({q.query_id for q in train} & {q.query_id for q in validation})
    assert not ({q.query_id for q in train + validation} & test_ids)
    train, validation, _ = training_queries(collection, model, DDROConfig(pseudo_queries=10))
    assert sum(isinstance(q, PseudoQuery) for q in train) == 10
    assert {q.query_id for q in validation} == held  # real queries validate while there are any


def test_an_sft_that_held_nothing_out_leaves_ddro_no_query_it_trained_on(tiny, tmp_path):
    """0.0 recorded is "nothing held out", not "not recorded": DDRO must not select on 20% of
    queries SFT trained on. A model SFT never trained records nothing (DDRO's default applies)."""
    from ddro.models import DocidModel
    from ddro.training.sft import stage_examples_for

    collection, model = tiny
    assert model.validation_fraction is None
    model.save(tmp_path / "untrained")
    assert DocidModel.load(tmp_path / "untrained").validation_fraction is None
    _, validation, _ = training_queries(collection, model, DDROConfig())
    assert validation  # the default fraction
    held_nothing = copy.copy(model)
    stage_examples_for(collection, held_nothing, get_preset("tiny", validation_fraction=0.0))
    held_nothing.save(tmp_path / "sft")
    held_nothing = DocidModel.load(tmp_path / "sft")
    assert held_nothing.validation_fraction == 0.0
    train, validation, _ = training_queries(collection, held_nothing, DDROConfig())
    assert not validation and train


def test_train_ddro_selects_on_validation_and_keeps_the_best_weights(tiny, tmp_path):
    collection, docid_model = tiny
    model = copy.deepcopy(docid_model)
    config = DDROConfig(num_train_epochs=4, per_device_train_batch_size=8, learning_rate=3e-3, per_query=4, eval_steps=2, patience=100,
                        validation_beams=4, bands="1-10,11-30", band_proportions="1,1")
    summary = train_ddro(model, collection, config, tmp_path / "ddro")
    history = summary.validation_history
    assert summary.pairs > 0 and summary.steps > 0 and history[0][0] == 0 and len(history) > 2
    best_step, best = max(history, key=lambda h: (h[1], -h[0]))
    assert summary.validation_score == best and summary.selected_step == best_step
    if best_step == 0:  # nothing beat the SFT weights: they are kept
        for a, b in zip(model.model.state_dict().values(), docid_model.model.state_dict().values()):
            assert torch.equal(a.cpu(), b.cpu())


def test_a_loaded_reference_trains_like_the_precomputed_one(tiny, tmp_path):
    """`precompute_ref_log_probs=False` scores each batch with a frozen copy instead: same steps, same
    validation curve, same weights (on a GPU the copy follows the policy onto the device)."""
    collection, docid_model = tiny
    results = []
    for precompute in (True, False):
        model = copy.deepcopy(docid_model)
        config = DDROConfig(num_train_epochs=2, per_device_train_batch_size=8, learning_rate=3e-3, per_query=2, eval_steps=2, patience=100,
                            validation_beams=4, validation_measure="loss", precompute_ref_log_probs=precompute)
        summary = train_ddro(model, collection, config, tmp_path / str(precompute))
        results.append((summary, {k: v.cpu() for k, v in model.model.state_dict().items()}))
    (pre, pre_state), (loaded, loaded_state) = results
    assert pre.steps == loaded.steps > 2 and pre.selected_step == loaded.selected_step
    curve = [v for _, v in pre.validation_history]
    # The curve must move, so that equal curves mean equal training. Whether a later step beats step 0
    # (so that the selected weights are trained ones) depends on the random initialisation, which
    # differs between transformers releases: with the floor (5.2) none does here.
    assert max(curve) - min(curve) > 1e-2
    np.testing.assert_allclose(curve, [v for _, v in loaded.validation_history], atol=1e-4)
    for name, value in pre_state.items():
        torch.testing.assert_close(value, loaded_state[name], atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("encoder_lr_scale", [1.0, 0.0])
def test_training_raises_chosen_minus_rejected(tiny, tmp_path, encoder_lr_scale):
    """A few steps raise the margin; with `encoder_lr_scale=0` the decoder alone learns it: the
    encoder's layers stay, while T5's shared embedding, the (tied) output head, moves its docid rows."""
    from ddro.training.ddro import DDROTrainer, precompute_reference
    collection, docid_model = tiny
    model = copy.deepcopy(docid_model)
    encoder_before = {k: v.clone() for k, v in model.model.encoder.state_dict().items() if k != "embed_tokens.weight"}
    docid_rows = torch.from_numpy(model.docid_token_ids)
    head_before = model.model.get_output_embeddings().weight[docid_rows].detach().clone()
    pairs = [Pair("q", collection.docs[i].title, i, (i + 11) % 30) for i in range(30)]
    dataset = PairDataset(pairs, model)
    precompute_reference(model, dataset)
    batch = pair_collator(model)([dataset[i] for i in range(len(pairs))])

    def margin():
        with torch.no_grad():
            chosen, rejected = pair_logps(model.model.eval(), on_model_device(batch, model.model))
        return float((chosen - rejected).mean())

    before = margin()
    args = DDROConfig(output_dir=str(tmp_path / "t"), num_train_epochs=5, learning_rate=3e-3,
                      per_device_train_batch_size=10, warmup_steps=0.05, logging_steps=50, disable_tqdm=True,
                      encoder_lr_scale=encoder_lr_scale)
    trainer = DDROTrainer(model=model.model, args=args, train_dataset=dataset, data_collator=pair_collator(model))
    trainer.train()
    assert margin() > before + 1.0
    logged = [h for h in trainer.state.log_history if "rewards/margins" in h]
    assert logged and logged[-1]["rewards/accuracies"] > 0.5
    encoder_after = model.model.encoder.state_dict()
    unchanged = all(torch.equal(encoder_before[k], encoder_after[k].cpu()) for k in encoder_before)
    assert unchanged == (encoder_lr_scale == 0.0)
    head_after = model.model.get_output_embeddings().weight[docid_rows].detach().cpu()
    assert (head_after - head_before).abs().amax(1).gt(0).all()  # every docid token's row moved


def test_a_bare_corpus_trains_and_validates_on_fresh_pseudo_queries(tiny):
    collection, model = tiny
    bare = bare_corpus(collection)
    train, validation, positives = training_queries(bare, model, DDROConfig())
    assert train and validation
    assert all(isinstance(q, PseudoQuery) for q in train + validation)
    for q in train + validation:
        doc = collection.docs[positives[q.query_id][0]]
        assert q.text not in (doc.title, doc.text.split(". ")[0] + ".")  # not what SFT's stage 2 saw first
        assert q.text in doc.text


def test_pseudo_queries_come_from_the_generator_sft_recorded(tiny, tmp_path):
    """With a query-generation model behind SFT's stage 2, DDRO's pseudo-queries (training and, on a
    bare corpus, validation) are that model's samples, not spans, and they are cached."""
    from ddro.models import DocidModel
    from ddro.training.ddro import _PSEUDO_SALT
    from ddro.training.instances import extractive_pseudo_queries, generated_pseudo_queries, qg_inputs
    from ddro.training.sft import stage_examples_for

    collection, model = tiny
    qg = str(write_query_generator(tmp_path / "qg"))
    model = copy.copy(model)
    stage_examples_for(collection, model, get_preset("tiny"), qg, tmp_path / "sft-cache")
    model.save(tmp_path / "sft")
    model = DocidModel.load(tmp_path / "sft")
    assert model.qg_model == qg
    bare = bare_corpus(collection)
    config = DDROConfig(pseudo_queries=12)
    train, validation, positives = training_queries(bare, model, config, tmp_path / "ddro")
    assert train and validation and list((tmp_path / "ddro" / "pseudo_queries").glob("*.json"))
    # The documents DDRO samples, drawn as it draws them; generated again here, without the cache.
    drawn = np.random.default_rng(config.seed).permutation(len(collection.docs))[:config.pseudo_queries]
    sampled = sorted(drawn.tolist())
    expected = generated_pseudo_queries(qg, qg_inputs([collection.docs[d] for d in sampled]), 1,
                                        config.seed + _PSEUDO_SALT, None)
    by_doc = {positives[q.query_id][0]: q.text for q in train + validation}
    # A sample that decodes to nothing (the random generator can end at once) gives its document no query.
    assert by_doc == {d: queries[0] for d, queries in zip(sampled, expected) if queries}
    spans = {d: extractive_pseudo_queries(collection.docs[d], 8, config.seed + _PSEUDO_SALT, d) for d in by_doc}
    assert not any(text in spans[d] for d, text in by_doc.items())


@pytest.mark.parametrize("source", ["bm25", "run file"])
def test_pseudo_queries_draw_negatives_among_the_sampled_documents(tiny, tmp_path, source):
    """A pseudo-query's document is an arbitrary one: its negatives come from the other sampled
    documents, so no sampled document is only ever raised; real queries keep the whole collection."""
    from ddro.training.ddro import negative_rankings

    collection, model = tiny
    config = DDROConfig(pseudo_queries=12, validation_fraction=0.0)
    train, _, positives = training_queries(collection, model, config)
    pseudo_ids = {q.query_id for q in train if isinstance(q, PseudoQuery)}
    pool = {collection.docs[positives[q][0]].doc_id for q in pseudo_ids}
    assert 0 < len(pool) < len(collection.docs)
    if source == "run file":
        run = tmp_path / "run.txt"
        run.write_text("".join(f"{q.query_id} {d.doc_id} {r}\n" for q in train
                               for r, d in enumerate(collection.docs, start=1)))
        config = DDROConfig(pseudo_queries=12, validation_fraction=0.0, negatives_run=str(run))
    rankings = negative_rankings(collection, None, [train], positives, config)
    for q in train:
        if isinstance(q, PseudoQuery):
            assert set(rankings[q.query_id]) == pool  # every pooled document, and no other
        else:
            assert len(rankings[q.query_id]) == len(collection.docs)
    pairs = make_pairs(train, positives, rankings, model.table, config.negatives())
    rejected = {collection.docs[p.rejected].doc_id for p in pairs if p.query_id in pseudo_ids}
    assert rejected and rejected <= pool


def test_a_query_is_pseudo_by_its_kind_not_its_id(tiny):
    """A collection's own query whose id looks like a pseudo-query's still draws negatives from the
    whole collection; a `PseudoQuery` draws them from the sampled documents only."""
    from ddro.training.ddro import negative_rankings

    collection, _ = tiny
    doc = collection.docs[0]
    real = Query("pseudo:7", collection.queries[0].text)
    pseudo = PseudoQuery(f"pseudo:{doc.doc_id}", doc.title)
    positives = {real.query_id: [1], pseudo.query_id: [0]}
    rankings = negative_rankings(collection, None, [[real, pseudo]], positives, DDROConfig())
    assert len(rankings[real.query_id]) == len(collection.docs)
    assert rankings[pseudo.query_id] == [doc.doc_id]


def test_negatives_from_trec_and_msmarco_run_files(tmp_path):
    from ddro.errors import DdroError
    from ddro.training.negatives import run_file_rankings

    (tmp_path / "run.trec").write_text("q1 Q0 b 1 3.0 x\nq1 Q0 a 2 2.0 x\nq2 Q0 c 1 1.0 x\n")
    (tmp_path / "run.tsv").write_text("q1\tb\t2\nq1\ta\t1\n")
    assert run_file_rankings(tmp_path / "run.trec") == {"q1": ["b", "a"], "q2": ["c"]}
    assert run_file_rankings(tmp_path / "run.tsv") == {"q1": ["a", "b"]}
    (tmp_path / "bad.tsv").write_text("q1\ta\t1\nq1\tb\n")
    with pytest.raises(DdroError, match="bad.tsv:2"):
        run_file_rankings(tmp_path / "bad.tsv")


def test_model_negatives_are_the_models_own_top_mistakes(tiny):
    from ddro.retrieval import GenerativeRetriever
    from ddro.training.ddro import model_rankings
    from ddro.training.selection import constrained_search

    collection, docid_model = tiny
    queries = collection.queries_of("train")[:3]
    rankings = model_rankings(constrained_search(docid_model), queries, depth=10)
    run = GenerativeRetriever(docid_model).search(queries, k=10, num_beams=10, progress=False)
    assert rankings == {qid: [d for d, _ in ranked] for qid, ranked in run.items()}
    _, _, positives = training_queries(collection, docid_model, DDROConfig(pseudo_queries=0))
    config = NegativeConfig(per_query=3, bands=((1, 10),), proportions=(1.0,))
    for pair in make_pairs(queries, positives, rankings, docid_model.table, config):
        rejected = docid_model.table.doc_ids[pair.rejected]
        assert rejected in rankings[pair.query_id][:10] and pair.rejected not in positives[pair.query_id]


@pytest.mark.parametrize("dropout", [False, True])
def test_rewards_start_at_zero_because_dropout_is_off(tiny, tmp_path, dropout):
    """Before any update the policy is the reference: with dropout off (the default) every reward is
    exactly 0 and the loss log 2, although the Trainer has put the model in training mode."""
    from ddro.training.ddro import DDROTrainer, precompute_reference
    collection, docid_model = tiny
    model = copy.deepcopy(docid_model)
    assert any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.model.modules())
    pairs = [Pair("q", collection.docs[i].title, i, (i + 11) % 30) for i in range(30)]
    dataset = PairDataset(pairs, model)
    precompute_reference(model, dataset)
    args = DDROConfig(output_dir=str(tmp_path / "t"), num_train_epochs=1, learning_rate=1e-3,
                      per_device_train_batch_size=30, disable_tqdm=True, dropout=dropout)
    trainer = DDROTrainer(model=model.model, args=args, train_dataset=dataset, data_collator=pair_collator(model))
    model.model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        loss = trainer.compute_loss(model.model, on_model_device(pair_collator(model)([dataset[i] for i in range(30)]),
                                                                 model.model))
    margins = trainer._stored["rewards/margins"][0]
    if dropout:
        assert abs(margins) > 1e-3 and abs(float(loss) - np.log(2)) > 1e-4
    else:
        assert margins == pytest.approx(0.0, abs=1e-5) and float(loss) == pytest.approx(np.log(2), abs=1e-6)


def test_validation_measure_is_the_named_ir_measure_of_the_sft_model_at_step_0(tiny, tmp_path):
    from ddro.evaluation import evaluate
    from ddro.retrieval import GenerativeRetriever

    collection, docid_model = tiny
    model = copy.deepcopy(docid_model)
    # The beam covers the corpus, so every relevant document is ranked: uncut nDCG is above 0 and
    # differs from RR@10 (both 0 with an untrained model's top few made the check vacuous, now and then).
    beams = len(collection.docs)
    config = DDROConfig(num_train_epochs=0.01, per_device_train_batch_size=8, per_query=2, validation_beams=beams, validation_measure="nDCG",
                        bands="1-10", band_proportions="1")
    _, validation, positives = training_queries(collection, model, config)
    run = GenerativeRetriever(docid_model).search(validation, k=beams, num_beams=beams, progress=False)
    qrels = {q.query_id: {docid_model.table.doc_ids[d]: 1 for d in positives[q.query_id]} for q in validation}
    expected = evaluate(run, qrels, [q.query_id for q in validation], ["nDCG"])["aggregate"]["nDCG"]
    summary = train_ddro(model, collection, config, tmp_path / "ddro")
    assert summary.validation_measure == "nDCG"
    assert summary.validation_history[0][1] == pytest.approx(expected)
    assert 0 < expected != evaluate(run, qrels, [q.query_id for q in validation], ["RR@10"])["aggregate"]["RR@10"]


def test_pseudo_queries_fill_a_small_validation_part_up(tiny):
    collection, model = tiny
    train_before, held, _ = training_queries(collection, model, DDROConfig(pseudo_queries=20))
    train, validation, _ = training_queries(collection, model, DDROConfig(pseudo_queries=20, validation_min_queries=8))
    ids = [q.query_id for q in validation]
    assert len(ids) == 8 and {q.query_id for q in held} <= set(ids)
    assert sum(isinstance(q, PseudoQuery) for q in validation) == 8 - len(held)
    assert not ({q.query_id for q in train} & set(ids))
    assert len(train) + len(validation) == len(train_before) + len(held)
