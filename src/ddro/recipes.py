"""Recipes: the docid, SFT and DDRO phases from a collection to saved files, called alike by
`ddro train ...` and `ddro run`.

Each phase writes to a `...Stage` (its folders and result file) and says whether that output is
complete, so `--resume` reuses a finished phase and continues an interrupted one. A stage's result
file is written last, by one rename: its presence means the phase finished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ddro import distributed
from ddro.errors import DdroError
from ddro.outputs import atomic_output_dir, atomic_write_text


def check_documents(doc_ids: list[str], collection, source, collection_source):
    """`collection` with its documents in the order of `doc_ids` (a docid table's, which training
    indexes them by: documents added to a model come after the others); a table or model made for
    other documents than `collection`'s would rank the wrong ones, and is refused."""
    doc_ids = list(doc_ids)
    if len(doc_ids) != len(collection.docs) or set(doc_ids) != {d.doc_id for d in collection.docs}:
        raise DdroError(f"{source}: made for another collection than {collection_source}")
    if doc_ids == [d.doc_id for d in collection.docs]:
        return collection
    return collection.with_documents(doc_ids, source)


@dataclass(frozen=True)
class DocidsStage:
    """A docid table's folder, written in one rename: complete when it is there."""
    folder: Path

    def is_complete(self) -> bool:
        return self.folder.is_dir()

    def load(self):
        from ddro.docids import DocidTable

        return DocidTable.load(self.folder)

    def save(self, table) -> None:
        with atomic_output_dir(self.folder, overwrite=True) as tmp:
            table.save(tmp)


@dataclass(frozen=True)
class SFTStage:
    """Where SFT writes: the model folder, the Trainer's folder and the result file."""
    model_dir: Path
    training_dir: Path
    result_file: Path

    @classmethod
    def in_folder(cls, folder: Path) -> "SFTStage":
        """`ddro train sft`'s layout: the model in `folder`, the Trainer's files under `folder/training`."""
        return cls(folder, folder / "training", folder / "training" / "timings.json")

    def is_complete(self) -> bool:
        return self.result_file.is_file()


@dataclass(frozen=True)
class DDROStage:
    """Where the DDRO phase writes: the model folder, the Trainer's folder and the summary file."""
    model_dir: Path
    training_dir: Path
    result_file: Path

    @classmethod
    def in_folder(cls, folder: Path) -> "DDROStage":
        """`ddro train ddro`'s layout: the model and `ddro_summary.json` in `folder`, the Trainer's files
        under `folder/training`."""
        return cls(folder, folder / "training", folder / "ddro_summary.json")

    def is_complete(self) -> bool:
        return self.result_file.is_file()


def save_model(docid_model, stage) -> None:
    """Save a phase's model (`stage.model_dir`) whole or not at all: a model folder inside a run is
    replaced in one rename (the older one stays until then, matching the older result file); one
    that holds the Trainer's files too (`ddro train ...`) is the command's work folder, which
    becomes its output only when complete."""
    if stage.training_dir.is_relative_to(stage.model_dir):
        docid_model.save(stage.model_dir)
        return
    with atomic_output_dir(stage.model_dir, overwrite=True) as tmp:
        docid_model.save(tmp)


def train_sft(collection, table, preset, stage: SFTStage, seed: int, qg_model: str | None = None,
              pseudo_queries_file: str | None = None, resume: bool = False, config=None):
    """`(model, SFTResult)`: the preset's model on `table`, trained by SFT's three stages and saved.

    `config` is the stages' `SFTConfig` (default: its defaults). With `resume` a complete stage is loaded (to search and train on at the preset's precision)
    and an interrupted one continues from its last finished SFT stage.
    """
    from ddro.models import DocidModel, build_docid_model
    from ddro.training import sft

    if resume and stage.is_complete():
        docid_model = DocidModel.load(stage.model_dir)
        docid_model.precision = preset.precision
        return docid_model, sft.SFTResult.from_dict(json.loads(stage.result_file.read_text()))
    docid_model = build_docid_model(preset, table, [d.full_text for d in collection.docs], seed)
    if preset.docid_init:
        start_from_centroids(docid_model, collection, table)
    examples = sft.stage_examples_for(collection, docid_model, preset, qg_model, stage.training_dir,
                                      pseudo_queries_file)
    result = sft.train_sft(docid_model, examples, preset, stage.training_dir, resume=resume, config=config)
    if distributed.is_main():
        save_model(docid_model, stage)
        atomic_write_text(stage.result_file, json.dumps(result.to_dict(), indent=2) + "\n")
    distributed.barrier()
    return docid_model, result


def start_from_centroids(docid_model, collection, table) -> None:
    """`--docid-init centroids`: the docid tokens' rows from the codes' centroids in the embeddings
    the docids were computed from (cached when they were built)."""
    from ddro.docids.encoders import document_texts, embed_documents, get_encoder, resolve_cache_dir
    from ddro.models.docid_init import check_scheme, code_vectors, init_docid_rows

    check_scheme(table)  # before the documents are embedded
    encoder = get_encoder(table.options["encoder"], table.options.get("seed", 0))
    embeddings = embed_documents(document_texts(collection), encoder, resolve_cache_dir(None))
    init_docid_rows(docid_model, code_vectors(table, embeddings))


def train_ddro(docid_model, collection, config, stage: DDROStage, resume: bool = False):
    """The DDRO phase on `docid_model` in place, saved; returns its `DDROResult`.

    With `resume` a complete stage trained with the same settings is loaded instead, and an
    interrupted one continues from its last checkpoint; one trained with other settings is trained
    again, not silently reused.
    """
    from ddro.models import DocidModel
    from ddro.training.ddro import DDROResult, train_ddro as train

    if resume and stage.is_complete():
        saved = DDROResult(**json.loads(stage.result_file.read_text()))
        if saved.config == json.loads(json.dumps(config.record())):
            docid_model.model.load_state_dict(DocidModel.load(stage.model_dir).model.state_dict())
            return saved
    result = train(docid_model, collection, config, stage.training_dir, resume=resume)
    if distributed.is_main():
        save_model(docid_model, stage)
        atomic_write_text(stage.result_file, json.dumps(result.to_dict(), indent=2) + "\n")
    distributed.barrier()
    return result
