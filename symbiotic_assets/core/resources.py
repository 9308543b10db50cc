"""Dagster resource that hands assets an ``IssueEmbedder`` without loading it at import.

Importing the code location must stay cheap, so the resource only holds
configuration; the model is loaded (and, for ONNX, exported once) the first time
an asset asks for the embedder, and the instance is reused for the rest of the run.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import PrivateAttr

from symbiotic_assets.core.embedding import DEFAULT_MODEL, IssueEmbedder


class EmbedderResource(dg.ConfigurableResource):
    """Issue embedder configuration: which model, which backend, where exports are cached."""

    model_name: str = DEFAULT_MODEL
    backend: Literal["torch", "onnx"] = "onnx"
    quantize: bool = True
    fuse_attention: bool = True
    cache_dir: str | None = None
    cache_size: int = 50_000
    batch_size: int = 32

    _embedder: IssueEmbedder | None = PrivateAttr(default=None)

    def get_embedder(self) -> IssueEmbedder:
        """The shared embedder, built on first use."""
        if self._embedder is None:
            self._embedder = IssueEmbedder(
                model_name=self.model_name,
                backend=self.backend,
                quantize=self.quantize,
                fuse_attention=self.fuse_attention,
                cache_dir=self.cache_dir,
                cache_size=self.cache_size,
            )
        return self._embedder
