"""Documents added to and removed from a trained model, without training it from scratch
(`ddro add-docs`, `ddro remove-docs`).

Adding: the new documents get docids as the table's scheme gives them, from what the table kept
(`ddro.docids.growth`: a pq or rq document's code from the saved codebook, so no other docid
moves); docid tokens the table lacked get decoder rows appended (`grow_docid_rows`); then one
training stage continues SFT on the new documents' examples (their pseudo-queries, their
indexing passages when the preset trains an indexing stage, and the training queries judging
them), mixed with a seeded sample of the old documents' examples (`replay` of them per new one,
SFT's replay), for `epochs` at the preset's pseudo-query stage learning rate and batch size; a DDRO round may follow on the
queries that judge new documents. The search's trie is made from the table, so the new
documents are found as soon as the model is saved.

Removing: the documents leave the table (and so the trie or the span index) and can no longer
be returned; the weights are not touched, and what they learned of those documents stays in
them unused.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ddro.errors import DdroError

# Old examples replayed per new example, and epochs over both: chosen on Cranfield's validation queries
# (docs/experiments.md#adding-documents-to-a-trained-model), where one epoch with 9 old examples per
# new one forgot least and cost a fifth of a full retrain; replay 1 over the preset's 4 epochs forgot most.
DEFAULT_REPLAY = 9.0
DEFAULT_EPOCHS = 1.0


@dataclass
class AddResult:
    documents: int
    new_tokens: int
    examples: int
    replayed: int
    query_examples: int
    seconds: float
    # The DDRO round's summary (`DDROResult.to_dict()` less its settings), when one ran.
    ddro: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def adopt_table(docid_model, table) -> int:
    """Make `table` (the model's table grown: same first tokens) the model's, with decoder rows for
    its new tokens; returns how many tokens joined."""
    from ddro.models.architectures import get_architecture, grow_docid_rows

    old = len(docid_model.table.vocab)
    if table.vocab[:old] != docid_model.table.vocab:
        raise DdroError("the grown docid table does not extend the model's own")
    architecture = get_architecture(docid_model.architecture)
    if architecture.encoder_decoder:
        # The decoder's positions cover the docids it was built for plus 8; a longer docid has none.
        limit = docid_model.model.config.decoder.max_position_embeddings
        if int(table.lengths.max()) + 2 > limit:
            raise DdroError(f"a new docid of {int(table.lengths.max())} tokens is longer than this model's decoder "
                            f"can write ({limit - 2}); build the docids again with the new documents")
    new_ids = grow_docid_rows(docid_model, table.vocab[old:], spans=table.spans is not None)
    docid_model.docid_token_ids = np.concatenate([docid_model.docid_token_ids, new_ids]).astype(np.int64)
    docid_model.table = table
    return len(table.vocab) - old


def add_documents(docid_model, collection, new_docs, preset, out_dir: Path, replay: float = DEFAULT_REPLAY,
                  epochs: float = DEFAULT_EPOCHS, cache_dir=None, ddro=None) -> AddResult:
    """Give `docid_model` the documents `new_docs` and train it on them (module docstring).

    `collection` holds the model's documents, and may hold the new ones (then its training
    queries that judge them train too); the Trainer's files go under `out_dir`. With `ddro` (a
    `DDROConfig`) a DDRO round follows on the queries judging new documents and the new
    documents' pseudo-queries, selected on every held-out query (old documents' too).
    """
    from ddro.docids.growth import added
    from ddro.training.sft import replayed

    start = time.perf_counter()
    old_docs = collection.with_documents(docid_model.table.doc_ids, "the model's docid table").docs
    grown = added(docid_model.table, new_docs, old_docs, cache_dir)
    new_tokens = adopt_table(docid_model, grown)
    everything = replace(collection, docs=list({d.doc_id: d for d in [*collection.docs, *new_docs]}.values()))
    ordered = everything.with_documents(grown.doc_ids)
    own, queries, pool = _examples(docid_model, ordered, len(old_docs), preset, cache_dir)
    replays = replayed(pool, len(own), replay, preset.seed)
    _train(docid_model, own + replays, preset, epochs, out_dir)
    round_summary = None
    if ddro is not None:
        from ddro.training.ddro import train_ddro

        summary = train_ddro(docid_model, ordered, ddro, out_dir / "ddro", documents=range(len(old_docs), len(grown)))
        round_summary = {k: v for k, v in summary.to_dict().items() if k != "config"}
    return AddResult(len(grown) - len(old_docs), new_tokens, len(own) + len(replays), len(replays), queries,
                     round(time.perf_counter() - start, 2), round_summary)


def _examples(docid_model, collection, n_old: int, preset, cache_dir):
    """`(new examples, how many of them are query examples, old examples to replay from)`: the
    SFT stages' examples of the documents after the first `n_old` of `collection` (in the grown
    table's order) and of those first ones."""
    from ddro.collections.base import validation_part
    from ddro.training.instances import index_examples, pseudo_examples, query_examples

    def documents_examples(docs, offset: int) -> list:
        examples = pseudo_examples(docs, preset.pseudo_queries_per_doc, preset.seed, docid_model.qg_model, cache_dir,
                                   docid_model.pseudo_queries_file)
        if preset.stage("index").epochs > 0:
            examples += index_examples(docs, preset.passages_per_doc, preset.passage_words, preset.seed)
        return [(text, doc + offset) for text, doc in examples]

    held_out = validation_part(collection.split.train, docid_model.validation_fraction or 0.0)
    index = {d.doc_id: i for i, d in enumerate(collection.docs)}
    judged = query_examples(collection, index, preset.query_repeats, held_out)
    new_queries = [(text, doc) for text, doc in judged if doc >= n_old]
    own = documents_examples(collection.docs[n_old:], n_old) + new_queries
    pool = documents_examples(collection.docs[:n_old], 0) + [(text, doc) for text, doc in judged if doc < n_old]
    return own, len(new_queries), pool


def _train(docid_model, examples: list, preset, epochs: float, out_dir: Path) -> None:
    """`epochs` over `examples` at the preset's pseudo-query stage learning rate and batch size."""
    from ddro.batching import DocidCollator
    from ddro.training.checkpoints import train_from, training_callbacks
    from ddro.training.sft import DocidTrainer, ExampleDataset, SFTConfig

    if not examples:
        return
    docid_model.model.train()
    trainer = DocidTrainer(
        model=docid_model.model, args=SFTConfig(save_strategy="no").for_stage(
            out_dir, replace(preset.stage("pseudo"), epochs=epochs), preset.seed),
        train_dataset=ExampleDataset(examples, docid_model, preset.seed), data_collator=DocidCollator(docid_model),
        encoder_lr_scale=docid_model.encoder_lr_scale(preset), precision=docid_model.precision,
        callbacks=training_callbacks(None),
    )
    train_from(trainer, None)
    docid_model.model.eval()


def remove_documents(docid_model, doc_ids) -> int:
    """Take `doc_ids` out of the model's table, so that no search returns them; returns how many."""
    from ddro.docids.growth import removed

    before = len(docid_model.table)
    docid_model.table = removed(docid_model.table, doc_ids)
    return before - len(docid_model.table)
