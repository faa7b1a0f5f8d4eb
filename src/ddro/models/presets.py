"""Presets: a model, its docids, and the three SFT stages' settings, chosen together.

`cpu` (the default) was chosen by measurement for the best effectiveness within the time budget
of `ddro run` on this project's 2-core CPU machines (README: *Choosing the default preset*);
`tiny` runs the whole pipeline in seconds for tests; `t5-scratch` is the from-scratch T5 the
warm start is measured against; `t5-base` records the paper's settings (needs the `t5-base`
weights and a GPU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ddro.errors import DdroError

STAGES = ("index", "pseudo", "query")


@dataclass
class StageConfig:
    epochs: float = 1.0
    learning_rate: float = 1e-3
    batch_size: int = 32


@dataclass
class Preset:
    name: str
    # minilm-warm: MiniLM encoder + small docid decoder; t5-scratch: T5 from random weights with a
    # tokenizer trained on the collection; pretrained: any HF seq2seq checkpoint (`model`).
    architecture: str
    model: str = ""
    # t5-scratch sizes
    d_model: int = 256
    d_ff: int = 1024
    encoder_layers: int = 4
    heads: int = 4
    tokenizer_vocab: int = 8000
    # minilm-warm decoder, and how much of the pretrained encoder trains
    decoder_layers: int = 1
    trainable_encoder_layers: int = 2
    encoder_lr_scale: float = 0.03
    tie_output: bool = True
    max_input_tokens: int = 64
    docids: dict = field(default_factory=dict)
    # Docids for collections of more than `large_collection` documents instead (None: `docids` always).
    large_docids: dict | None = None
    large_collection: int = 0
    stages: dict = field(default_factory=dict)
    # training text
    passages_per_doc: int = 10
    passage_words: int = 40
    pseudo_queries_per_doc: int = 6
    query_repeats: int = 1
    # Training queries held out of SFT for validation and DDRO's model selection.
    validation_fraction: float = 0.2
    # Examples of the earlier stages mixed into the query stage, as a multiple of its own size.
    replay: float = 0.0
    beams: int = 100
    seed: int = 0
    # The arithmetic of training and search (`ddro.precision`): fp32, or bf16 autocast where the
    # paper's T5-base trains on GPUs.
    precision: str = "fp32"

    def docids_for(self, documents: int) -> dict:
        """The docid options for a collection of `documents` documents."""
        if self.large_docids is not None and documents > self.large_collection:
            return dict(self.large_docids)
        return dict(self.docids)

    def stage(self, name: str) -> StageConfig:
        return self.stages[name]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["stages"] = {k: asdict(v) for k, v in self.stages.items()}
        return out


def _stages(index, pseudo, query) -> dict:
    return {name: StageConfig(*values) for name, values in zip(STAGES, (index, pseudo, query))}


# PQ 4 x 256 of MiniLM embeddings, and RQ 4 x 256 above 3,000 documents (README: *Choosing the
# docids*). PQ's 256 centroids per quarter of the embedding keep Cranfield's (1,400 documents)
# dense ranking almost whole, and SFT on them beat RQ there; on NPL (11,429) and LISA (5,999) they
# kept a third or less of it and left 19-35% of the documents sharing all four codes, and SFT on
# RQ, whose first code clusters the whole embedding, beat SFT on PQ by 0.11-0.12 RR@10. Where
# between 1,400 and 6,000 documents the turn lies was not measured.
CPU_DOCIDS = {"scheme": "pq", "pq_m": 4, "pq_k": 256, "encoder": "minilm"}
CPU_LARGE_DOCIDS = {"scheme": "rq", "rq_levels": 4, "rq_k": 256, "encoder": "minilm"}
CPU_LARGE_COLLECTION = 3000

PRESETS = {
    "tiny": Preset(
        name="tiny", architecture="t5-scratch", d_model=32, d_ff=64, encoder_layers=1, decoder_layers=1,
        heads=2, tokenizer_vocab=500, max_input_tokens=32, passages_per_doc=2, pseudo_queries_per_doc=2,
        docids={"scheme": "pq", "pq_m": 2, "pq_k": 8, "encoder": "lsa:16"},
        stages=_stages((1, 3e-3, 32), (1, 3e-3, 32), (1, 3e-3, 32)), beams=10,
    ),
    # Measured on Cranfield (README: *Choosing the default preset*): the indexing passages train
    # slowly on 2 cores and add little once stage 3 replays them, so stage 1 has no epochs of its
    # own; ten pseudo-queries per document carry the indexing.
    "cpu": Preset(
        name="cpu", architecture="minilm-warm", decoder_layers=1, trainable_encoder_layers=2,
        encoder_lr_scale=0.03, max_input_tokens=64, pseudo_queries_per_doc=10, query_repeats=3, replay=1.0,
        docids=dict(CPU_DOCIDS), large_docids=dict(CPU_LARGE_DOCIDS), large_collection=CPU_LARGE_COLLECTION,
        stages=_stages((0, 1e-3, 64), (4, 1e-3, 64), (3, 1e-3, 32)), beams=100,
    ),
    # The cpu preset's data and schedule on a T5 trained from random weights (the comparison).
    "t5-scratch": Preset(
        name="t5-scratch", architecture="t5-scratch", d_model=256, d_ff=1024, encoder_layers=4, decoder_layers=2,
        heads=4, tokenizer_vocab=8000, max_input_tokens=64, pseudo_queries_per_doc=10, query_repeats=3, replay=1.0,
        docids=dict(CPU_DOCIDS), large_docids=dict(CPU_LARGE_DOCIDS), large_collection=CPU_LARGE_COLLECTION,
        stages=_stages((0, 1e-3, 64), (4, 1e-3, 64), (3, 1e-3, 32)), beams=100,
    ),
    # The paper's settings (section 2 of shared/reference/ddro.md): T5-base, PQ 24 x 256,
    # lr 1e-3, batch 128, 10 / 20 / 10 epochs, beam 100 (NQ-PQ).
    "t5-base": Preset(
        name="t5-base", architecture="pretrained", model="t5-base", max_input_tokens=128, passages_per_doc=10,
        pseudo_queries_per_doc=10, docids={"scheme": "pq", "pq_m": 24, "pq_k": 256, "encoder": "hf:sentence-transformers/gtr-t5-base"},
        stages=_stages((10, 1e-3, 128), (20, 1e-3, 128), (10, 1e-3, 128)), beams=100, precision="bf16",
    ),
}
DEFAULT_PRESET = "cpu"


def get_preset(name: str, model: str | None = None, stage_overrides: dict | None = None, **fields) -> Preset:
    """A preset by name; `model` (an HF id or path) makes it a `pretrained` preset of that model.

    `stage_overrides` maps `"<stage>_<field>"` (e.g. `query_epochs`, `index_learning_rate`) to a
    value; `fields` replace preset fields (e.g. `seed`, `tie_output`).
    """
    if name not in PRESETS:
        raise DdroError(f"--preset {name!r}: unknown preset (choose from {', '.join(PRESETS)})")
    preset = replace(PRESETS[name], **fields)
    if model:
        preset = replace(preset, architecture="pretrained", model=model)
    stages = {stage: replace(config) for stage, config in preset.stages.items()}
    for key, value in (stage_overrides or {}).items():
        stage, _, field_name = key.partition("_")
        if value is None:
            continue
        if stage not in stages or not hasattr(stages[stage], field_name):
            raise DdroError(f"unknown stage setting {key!r}")
        if value <= 0 and field_name != "epochs":
            raise DdroError(f"--{key.replace('_', '-')} must be positive (got {value})")
        setattr(stages[stage], field_name, value)
    return replace(preset, stages=stages)
