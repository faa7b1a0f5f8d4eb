"""Presets: a model, its docids and the three SFT stages' settings, composed from parts.

A preset is a `NetworkConfig` (the architecture, its sizes and arithmetic), a `DocidPlan` (the
docid options by collection size), the stages' `StageConfig`s and the training-data settings.
`cpu` (the default) is the most effective setting measured within `ddro run`'s time budget on a
2-core CPU; `tiny` runs the whole pipeline in seconds for tests; `t5-scratch` is `cpu` with a T5
trained from random weights, the comparison for the warm start; `t5-base` records the paper's
settings (needs the `t5-base` weights and a GPU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ddro.errors import DdroError, OptionError

STAGES = ("index", "pseudo", "query")


@dataclass
class StageConfig:
    epochs: float = 1.0
    learning_rate: float = 1e-3
    batch_size: int = 32


@dataclass(frozen=True)
class NetworkConfig:
    """The model: which architecture (`ddro.models.architectures`) builds it, and its sizes."""

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
    # The arithmetic of training and search (`ddro.precision`): fp32, or bf16 autocast where the
    # paper's T5-base trains on GPUs.
    precision: str = "fp32"


@dataclass(frozen=True)
class DocidPlan:
    """The docid options (`DocidConfig` fields) a preset builds, by collection size."""

    docids: dict
    # Docids for collections of more than `large_collection` documents instead (None: `docids` always).
    large_docids: dict | None = None
    large_collection: int = 0

    def for_documents(self, documents: int) -> dict:
        """The docid options for a collection of `documents` documents."""
        if self.large_docids is not None and documents > self.large_collection:
            return dict(self.large_docids)
        return dict(self.docids)

    def for_scheme(self, scheme: str) -> dict:
        """The options of another scheme, with the plan's options of that scheme where it has them."""
        return self.docids | (self.large_docids or {}) | {"scheme": scheme}


# The parts whose fields a preset's settings (`to_dict`, `with_fields`) name directly.
PARTS = ("network", "docid_plan")


@dataclass
class Preset:
    name: str
    network: NetworkConfig
    docid_plan: DocidPlan
    stages: dict[str, StageConfig]
    # training text
    passages_per_doc: int = 10
    passage_words: int = 40
    pseudo_queries_per_doc: int = 6
    # Stage 2 also pairs each pseudo-query with a teacher's (`ddro.teacher`: bm25, dense, bm25+dense)
    # best `pseudo_teacher_targets` documents other than its own; None: its own document only.
    pseudo_teacher: str | None = None
    pseudo_teacher_targets: int = 1
    # The docid tokens' rows start from the codes' centroids (`ddro.models.docid_init`); None: random.
    docid_init: str | None = None
    query_repeats: int = 1
    # Training queries held out of SFT for validation and DDRO's model selection.
    validation_fraction: float = 0.2
    # Examples of the earlier stages mixed into the query stage, as a multiple of its own size.
    replay: float = 0.0
    beams: int = 100
    seed: int = 0

    @property
    def architecture(self) -> str:
        return self.network.architecture

    @property
    def model(self) -> str:
        return self.network.model

    @property
    def precision(self) -> str:
        return self.network.precision

    def docid_options(self, documents: int, scheme: str | None = None) -> dict:
        """The docid options for a collection of `documents` documents, or of `scheme` (`--scheme`)
        at any size. Text docids default to the tokenizer the architecture names (a pretrained
        checkpoint's own: the paper's TU docids are T5 subwords)."""
        from ddro.docids.schemes import SchemeKind, get_scheme
        from ddro.models.architectures import get_architecture

        options = self.docid_plan.for_scheme(scheme) if scheme else self.docid_plan.for_documents(documents)
        tokenizer = get_architecture(self.architecture).docid_tokenizer(self.network)
        if tokenizer is not None and get_scheme(options["scheme"]).kind in (SchemeKind.TEXTUAL, SchemeKind.SPANS):
            options.setdefault("tokenizer", tokenizer)
        return options

    def stage(self, name: str) -> StageConfig:
        return self.stages[name]

    def with_fields(self, **settings) -> "Preset":
        """This preset with `settings` replaced, each in the part that holds it (`seed`, `tie_output`, ...)."""
        parts = {}
        for part_name in PARTS:
            part = getattr(self, part_name)
            own = {f.name: settings.pop(f.name) for f in fields(part) if f.name in settings}
            parts[part_name] = replace(part, **own)
        return replace(self, **parts, **settings)

    def to_dict(self) -> dict:
        """Every setting by its name, the parts' fields flattened in (as `config.json` records them)."""
        out = {}
        for name, value in asdict(self).items():
            out |= value if name in PARTS else {name: value}
        return out


def _stages(index, pseudo, query) -> dict:
    return {name: StageConfig(*values) for name, values in zip(STAGES, (index, pseudo, query))}


TINY = Preset(
    name="tiny",
    network=NetworkConfig("t5-scratch", d_model=32, d_ff=64, encoder_layers=1, decoder_layers=1, heads=2,
                          tokenizer_vocab=500, max_input_tokens=32),
    docid_plan=DocidPlan({"scheme": "pq", "pq_m": 2, "pq_k": 8, "encoder": "lsa:16"}),
    stages=_stages((1, 3e-3, 32), (1, 3e-3, 32), (1, 3e-3, 32)),
    passages_per_doc=2, pseudo_queries_per_doc=2, beams=10,
)
# PQ 4 x 256 of MiniLM embeddings; RQ 4 x 256 above 3,000 documents, where PQ's codes stop keeping
# the dense ranking (docs/experiments.md#choosing-the-docids).
CPU_DOCIDS = DocidPlan({"scheme": "pq", "pq_m": 4, "pq_k": 256, "encoder": "minilm"},
                       large_docids={"scheme": "rq", "rq_levels": 4, "rq_k": 256, "encoder": "minilm"},
                       large_collection=3000)
# Stage 1 has no epochs of its own: stage 3 replays the indexing passages, and ten pseudo-queries
# per document carry the indexing.
CPU = Preset(
    name="cpu",
    network=NetworkConfig("minilm-warm", decoder_layers=1, trainable_encoder_layers=2, encoder_lr_scale=0.03,
                          max_input_tokens=64),
    docid_plan=CPU_DOCIDS,
    stages=_stages((0, 1e-3, 64), (4, 1e-3, 64), (3, 1e-3, 32)),
    pseudo_queries_per_doc=10, query_repeats=3, replay=1.0, beams=100,
)
# The cpu preset's docids, data and schedule on a T5 trained from random weights.
T5_SCRATCH_NETWORK = NetworkConfig("t5-scratch", d_model=256, d_ff=1024, encoder_layers=4, decoder_layers=2,
                                   heads=4, tokenizer_vocab=8000, max_input_tokens=64)
T5_SCRATCH = replace(CPU, name="t5-scratch", network=T5_SCRATCH_NETWORK)
# The paper's settings (section 2 of shared/reference/ddro.md): T5-base, PQ 24 x 256 of GTR
# embeddings, lr 1e-3, batch 128, 10 / 20 / 10 epochs, beam 100 (NQ-PQ).
T5_BASE = Preset(
    name="t5-base",
    network=NetworkConfig("pretrained", model="t5-base", max_input_tokens=128, precision="bf16"),
    docid_plan=DocidPlan({"scheme": "pq", "pq_m": 24, "pq_k": 256, "encoder": "hf:sentence-transformers/gtr-t5-base"}),
    stages=_stages((10, 1e-3, 128), (20, 1e-3, 128), (10, 1e-3, 128)),
    passages_per_doc=10, pseudo_queries_per_doc=10, beams=100,
)

PRESETS = {preset.name: preset for preset in (TINY, CPU, T5_SCRATCH, T5_BASE)}
DEFAULT_PRESET = "cpu"


def get_preset(name: str, model: str | None = None, stage_overrides: dict | None = None, **settings) -> Preset:
    """A preset by name; `model` (an HF id or path) makes it a `pretrained` preset of that model.

    `stage_overrides` maps `"<stage>_<field>"` (e.g. `query_epochs`, `index_learning_rate`) to a
    value; `settings` replace preset fields, those of its parts included (e.g. `seed`, `tie_output`).
    """
    if name not in PRESETS:
        raise OptionError("preset", f"{name!r}: unknown preset (choose from {', '.join(PRESETS)})")
    preset = PRESETS[name].with_fields(**settings)
    if preset.pseudo_teacher_targets < 1:
        raise OptionError("pseudo_teacher_targets", f"must be at least 1 (got {preset.pseudo_teacher_targets})")
    from ddro.models.docid_init import INITS

    if preset.docid_init is not None and preset.docid_init not in INITS:
        raise OptionError("docid_init", f"{preset.docid_init!r}: choose from {', '.join(INITS)}")
    if model:
        preset = preset.with_fields(architecture="pretrained", model=model)
    stages = {stage: replace(config) for stage, config in preset.stages.items()}
    for key, value in (stage_overrides or {}).items():
        stage, _, field_name = key.partition("_")
        if value is None:
            continue
        if stage not in stages or not hasattr(stages[stage], field_name):
            raise DdroError(f"unknown stage setting {key!r}")
        if value <= 0 and field_name != "epochs":
            raise OptionError(key, f"must be positive (got {value})")
        setattr(stages[stage], field_name, value)
    return replace(preset, stages=stages)
