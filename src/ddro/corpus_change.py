"""Documents added to and removed from a trained model, without training it from scratch
(`ddro add-docs`, `ddro remove-docs`).

Adding: the new documents get docids as the table's scheme gives them, from what the table kept
(`ddro.docids.growth`: a pq or rq document's code from the saved codebook, so no other docid
moves); docid tokens the table lacked get decoder rows appended (`grow_docid_rows`); then one
training stage continues SFT on the new documents' examples (their pseudo-queries, their
indexing passages when the preset trains an indexing stage, and the training queries judging
them), mixed with a seeded sample of the old documents' examples (`replay` of them per new one,
SFT's replay), at the preset's pseudo-query stage settings. The search's trie is made from the
table, so the new documents are found as soon as the model is saved.

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

# Old examples replayed per new example: as many as there are new ones (SFT's query stage replays likewise).
DEFAULT_REPLAY = 1.0


@dataclass
class AddResult:
    documents: int
    new_tokens: int
    examples: int
    replayed: int
    query_examples: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def table_documents(table, collection, source: str) -> list:
    """The `Document`s of `table`, in its order, from `collection` (which may hold more)."""
    by_id = {d.doc_id: d for d in collection.docs}
    missing = next((d for d in table.doc_ids if d not in by_id), None)
    if missing is not None:
        raise DdroError(f"{source}: the model's document {missing!r} is not in the collection "
                        "(give the collection the model was trained on, grown or not)")
    return [by_id[d] for d in table.doc_ids]


def in_table_order(collection, table, source: str):
    """`collection` with exactly the table's documents, in the table's order (its queries, judgments
    and split kept, judgments of other documents dropped), as training on a table expects."""
    docs = table_documents(table, collection, source)
    known = set(table.doc_ids)
    part_qrels = None
    if collection.part_qrels is not None:
        part_qrels = {part: [q for q in qrels if q.doc_id in known] for part, qrels in collection.part_qrels.items()}
    return replace(collection, docs=docs, qrels=[q for q in collection.qrels if q.doc_id in known],
                   part_qrels=part_qrels)


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
                  cache_dir=None) -> AddResult:
    """Give `docid_model` the documents `new_docs` and train it on them (module docstring).

    `collection` holds the model's documents (its training queries may judge the new ones); the
    Trainer's files go under `out_dir`.
    """
    from ddro.docids.growth import added

    start = time.perf_counter()
    old_docs = table_documents(docid_model.table, collection, "--collection")
    n_old = len(old_docs)
    grown = added(docid_model.table, new_docs, old_docs, cache_dir)
    new_tokens = adopt_table(docid_model, grown)
    own, queries, pool = _examples(docid_model, collection, old_docs, new_docs, preset, cache_dir)
    from ddro.training.sft import replayed

    replays = replayed(pool, len(own), replay, preset.seed)
    _train(docid_model, own + replays, preset, out_dir)
    return AddResult(len(grown) - n_old, new_tokens, len(own) + len(replays), len(replays), queries,
                     round(time.perf_counter() - start, 2))


def _examples(docid_model, collection, old_docs, new_docs, preset, cache_dir):
    """`(new examples, how many of them are query examples, old examples to replay from)`: the
    stages' examples of the new documents and of the old, indexed as in the grown table."""
    from ddro.collections.base import validation_part
    from ddro.training.instances import index_examples, pseudo_examples, query_examples

    def documents_examples(docs, offset: int) -> list:
        examples = pseudo_examples(docs, preset.pseudo_queries_per_doc, preset.seed, docid_model.qg_model, cache_dir,
                                   docid_model.pseudo_queries_file)
        if preset.stage("index").epochs > 0:
            examples += index_examples(docs, preset.passages_per_doc, preset.passage_words, preset.seed)
        return [(text, doc + offset) for text, doc in examples]

    n_old = len(old_docs)
    grown = in_table_order(collection, docid_model.table, "--collection")
    held_out = validation_part(collection.split.train, docid_model.validation_fraction or 0.0)
    index = {doc_id: i for i, doc_id in enumerate(docid_model.table.doc_ids)}
    judged = query_examples(grown, index, preset.query_repeats, held_out)
    new_queries = [(text, doc) for text, doc in judged if doc >= n_old]
    old_queries = [(text, doc) for text, doc in judged if doc < n_old]
    own = documents_examples(new_docs, n_old) + new_queries
    return own, len(new_queries), documents_examples(old_docs, 0) + old_queries


def _train(docid_model, examples: list, preset, out_dir: Path) -> None:
    """One Trainer pass over `examples` at the preset's pseudo-query stage settings."""
    from ddro.batching import DocidCollator
    from ddro.training.checkpoints import train_from, training_callbacks
    from ddro.training.sft import DocidTrainer, ExampleDataset, SFTConfig

    if not examples:
        return
    docid_model.model.train()
    trainer = DocidTrainer(
        model=docid_model.model, args=SFTConfig(save_strategy="no").for_stage(out_dir, preset.stage("pseudo"), preset.seed),
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
