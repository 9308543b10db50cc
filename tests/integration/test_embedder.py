"""The issue embedder with the real MiniLM model: shape, semantics, ONNX agreement, caching."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from symbiotic_assets.core.embedding import IssueEmbedder, VectorCacheTable, issue_text, path_words

pytestmark = pytest.mark.slow

REALISTIC = [
    issue_text(
        "security",
        "B608: Possible SQL injection vector through string-based query construction",
        "src/auth/sql_query.py",
        "bandit",
    ),
    issue_text(
        "security", "B105: Possible hardcoded password: 'admin123'", "src/app/config.py", "gitleaks"
    ),
    issue_text(
        "formatting", "E501 Line too long (123 > 100)", "src/billing/views.py", "ruff-check"
    ),
    issue_text(
        "type_error",
        'Argument 1 to "load_user" has incompatible type "int"; expected "str"',
        "src/users/service.py",
        "mypy",
    ),
    issue_text(
        "test_failure",
        "AssertionError: assert 3 == 4 in test_compute_total",
        "tests/orders/test_service.py",
        "pytest",
    ),
    issue_text(
        "import_error",
        "ModuleNotFoundError: No module named 'yaml'",
        "src/core/__init__.py",
        "fast",
    ),
    issue_text(
        "complexity",
        "C901 'parse_payload' is too complex (17)",
        "src/ingest/pipeline.py",
        "complexity",
    ),
    issue_text(
        "dead_code",
        "vulture: unused function 'export_csv' (60% confidence)",
        "src/reports/tasks.py",
        "comprehensive",
    ),
    issue_text(
        "performance",
        "N+1 query pattern: get_orders issues a query per item in a loop",
        "src/orders/repository.py",
        "comprehensive",
    ),
    issue_text(
        "documentation",
        "D103 Missing docstring in public function 'send_email'",
        "src/notifications/client.py",
        "ruff-check",
    ),
    issue_text(
        "dependency",
        "pip-audit: requests 2.19.0 has known vulnerability GHSA-x84v",
        "pyproject.toml",
        "comprehensive",
    ),
    issue_text(
        "warning",
        "DeprecationWarning: datetime.utcnow() is deprecated",
        "src/scheduler/tasks.py",
        "pytest",
    ),
    issue_text(None, "x", None, None),
]


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def onnx_embedder(model_cache: Path) -> IssueEmbedder:
    return IssueEmbedder(backend="onnx", cache_dir=model_cache)


@pytest.fixture(scope="module")
def torch_embedder() -> IssueEmbedder:
    return IssueEmbedder(backend="torch")


def test_text_format_splits_paths_into_words() -> None:
    assert path_words("src/auth/sql_query.py") == "src auth sql query py"
    text = issue_text("type_error", "bad arg", "src/auth/sql_query.py", "mypy")
    assert text == "type error issue: bad arg. File: src auth sql query py. Stage: mypy"
    with pytest.raises(ValueError, match="all empty"):
        issue_text(None, "", None, None)


def test_importing_the_embedder_does_not_load_torch() -> None:
    import subprocess

    code = (
        "import sys; import symbiotic_assets.core.embedding, symbiotic_assets.core.resources; "
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules, 'onnxruntime' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False False"


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_vectors_are_unit_norm_float32_384(
    backend: str, onnx_embedder: IssueEmbedder, torch_embedder: IssueEmbedder
) -> None:
    emb = onnx_embedder if backend == "onnx" else torch_embedder
    vecs = emb.embed_many(REALISTIC)
    assert vecs.shape == (len(REALISTIC), 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    one = emb.embed_one(REALISTIC[0])
    assert one.shape == (384,) and one.dtype == np.float32


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_sql_injection_lands_nearer_security_than_formatting(
    backend: str, onnx_embedder: IssueEmbedder, torch_embedder: IssueEmbedder
) -> None:
    emb = onnx_embedder if backend == "onnx" else torch_embedder
    sql = emb.embed_issue(
        "security",
        "Possible SQL injection via string-formatted query in get_user",
        "src/users/db_query.py",
        "bandit",
    )
    other_security = emb.embed_issue(
        "security", "Use of weak MD5 hash for password storage", "src/auth/passwords.py", "bandit"
    )
    formatting = emb.embed_issue(
        "formatting", "Line too long (120 > 100 characters)", "src/users/db_query.py", "ruff-format"
    )
    # the formatting issue even shares the file path: the message must still decide
    assert float(sql @ other_security) > float(sql @ formatting)
    leak = emb.embed_issue(
        "security",
        "B105: Possible hardcoded password: 'hunter2'",
        "src/app/settings.py",
        "gitleaks",
    )
    wrap = emb.embed_issue(
        "formatting", "W291 trailing whitespace", "src/app/views.py", "ruff-check"
    )
    assert float(sql @ leak) > float(sql @ wrap) + 0.05


def test_onnx_agrees_with_sentence_transformers(
    onnx_embedder: IssueEmbedder, torch_embedder: IssueEmbedder, model_cache: Path
) -> None:
    ref = torch_embedder.embed_many(REALISTIC)
    got = onnx_embedder.embed_many(REALISTIC, batch_size=5)
    cos = (ref * got).sum(axis=1)
    assert cos.mean() >= 0.99, cos
    assert cos.min() >= 0.97, cos
    fp32 = IssueEmbedder(backend="onnx", quantize=False, cache_dir=model_cache)
    exact = (fp32.embed_many(REALISTIC) * ref).sum(axis=1)
    assert exact.min() >= 0.9999, exact


def test_cache_hit_avoids_re_embedding(onnx_embedder: IssueEmbedder) -> None:
    text = issue_text("security", "cache probe: eval of untrusted input", "src/x.py", "semgrep")
    before = onnx_embedder.model_calls
    first = onnx_embedder.embed_one(text)
    assert onnx_embedder.model_calls == before + 1
    again = onnx_embedder.embed_many([text, text, text])
    assert onnx_embedder.model_calls == before + 1
    assert np.array_equal(again[0], first)


def test_persistent_cache_in_duckdb(model_cache: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    table = VectorCacheTable(con)
    texts = REALISTIC[:4] + [REALISTIC[0]]
    first = IssueEmbedder(backend="onnx", cache_dir=model_cache)
    vecs = first.embed_many(texts, persistent=table)
    assert first.model_calls == 4 and table.count() == 4
    fresh = IssueEmbedder(backend="onnx", cache_dir=model_cache)  # empty in-memory cache
    again = fresh.embed_many(texts, persistent=table)
    assert fresh.model_calls == 0
    assert np.allclose(again, vecs, atol=1e-6)
    con.close()


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="backend='tf'"):
        IssueEmbedder(backend="tf")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        IssueEmbedder().embed_many(["ok", 3])  # type: ignore[list-item]


def test_batches_padded_per_batch_match_one_at_a_time(model_cache: Path) -> None:
    # Texts of very different token counts, batched together: each batch is padded
    # to its own longest text and the rows come back in input order.
    texts = [REALISTIC[0], "x", REALISTIC[4] + " " + REALISTIC[8], REALISTIC[2], "short text"]
    fp32 = IssueEmbedder(backend="onnx", quantize=False, cache_dir=model_cache, cache_size=0)
    singles = np.stack([fp32.embed_one(t) for t in texts])
    for batch_size in (1, 2, 5):
        batched = fp32.embed_many(texts, batch_size=batch_size)
        assert np.allclose(batched, singles, atol=2e-5), batch_size
    # int8 quantizes activations with one scale per batch, so the company a text
    # keeps moves its vector a little (most for a 3-token text among long ones)
    int8 = IssueEmbedder(backend="onnx", cache_dir=model_cache, cache_size=0)
    assert int8.model_id.endswith("@onnx-int8-fused")
    singles = np.stack([int8.embed_one(t) for t in texts])
    batched = int8.embed_many(texts, batch_size=5)
    assert (batched * singles).sum(axis=1).min() >= 0.97
    assert (batched * fp32.embed_many(texts)).sum(axis=1).min() >= 0.97


def test_embedder_for_model_id_rebuilds_each_variant() -> None:
    from symbiotic_assets.core.embedding import embedder_for_model_id

    for variant in ("torch", "onnx", "onnx-int8", "onnx-int8-fused"):
        emb = embedder_for_model_id(f"all-MiniLM-L6-v2@{variant}|commit-text-v1")
        assert emb.model_id == f"all-MiniLM-L6-v2@{variant}"
        if variant != "torch":  # queries: one ONNX Runtime thread, no spinning second one
            assert emb.num_threads == 1
    with pytest.raises(ValueError, match="unknown variant 'onnx-int4'"):
        embedder_for_model_id("all-MiniLM-L6-v2@onnx-int4")
