"""Dagster resources: the settings, the warehouse, and the embedder (not loaded at import).

Importing the code location must stay cheap, so the resources only hold
configuration. ``SettingsResource`` reads ``symbiotic.yaml`` and the environment
when an asset or sensor asks, not when the code location loads, so an edited file
is seen by the next run without restarting Dagster (and a broken file fails the run
that reads it, naming the file, instead of the whole code location). The warehouse
resource takes its path from the settings resource the same way. The embedder's
model is loaded (and, for ONNX, exported once) the first time an asset asks for it,
and the instance is reused for the rest of the run.
"""

# No ``from __future__ import annotations``: Dagster reads the ``settings`` field's
# annotation (a ResourceDependency) at class creation and cannot see through a string.
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, cast

import dagster as dg
import duckdb
from pydantic import Field, PrivateAttr

from symbiotic_assets.core.config import Settings, load_settings
from symbiotic_assets.core.embedding import DEFAULT_MODEL, IssueEmbedder
from symbiotic_assets.core.warehouse import connect


class SettingsResource(dg.ConfigurableResource):
    """Symbiotic's settings for assets and sensors (``symbiotic.yaml`` + ``SYMBIOTIC_*``).

    ``config_file`` picks a file other than the default lookup (``$SYMBIOTIC_CONFIG``,
    then ``./symbiotic.yaml``); ``home`` stands in for ``$SYMBIOTIC_HOME``. Both can be
    set in a run's configuration. Assets take this resource instead of calling
    ``load_settings()`` so a test or a deployment can hand them other settings the
    Dagster way.
    """

    config_file: str | None = None
    home: str | None = None

    def get_settings(self) -> Settings:
        """The settings as of now (re-read on each call: the file may have been edited)."""
        return load_settings(self.config_file, home=self.home)


# One instance shared by every domain's Definitions: Dagster merges definitions only
# when a resource key maps to the very same object. Configured at launch (every field is
# optional, so a run without configuration reads the defaults) so that the warehouse
# resource, which depends on it, follows a run's ``config_file``/``home`` too: Dagster
# hands a resource the run-configured instance of a dependency only for such a partial one.
settings_resource = SettingsResource.configure_at_launch()


def _default_settings() -> dg.ResourceDependency[SettingsResource]:
    """A resource built without settings (tests, the CLI) reads the default ones."""
    return cast("dg.ResourceDependency[SettingsResource]", SettingsResource())


class EmbedderResource(dg.ConfigurableResource):
    """Issue embedder configuration: which model, which backend, where exports are cached."""

    model_name: str = DEFAULT_MODEL
    backend: Literal["torch", "onnx"] = "onnx"
    quantize: bool = True
    fuse_attention: bool = True
    cache_dir: str | None = None
    cache_size: int = 50_000
    batch_size: int = 32
    settings: dg.ResourceDependency[SettingsResource] = Field(default_factory=_default_settings)

    _embedder: IssueEmbedder | None = PrivateAttr(default=None)

    def get_embedder(self) -> IssueEmbedder:
        """The shared embedder, built on first use.

        Exported models go to ``cache_dir``, else to ``models/`` under the home of the
        ``settings`` dependency (so a run handed another home exports there too).
        """
        if self._embedder is None:
            cache_dir = self.cache_dir or str(self.settings.get_settings().home / "models")
            self._embedder = IssueEmbedder(
                model_name=self.model_name,
                backend=self.backend,
                quantize=self.quantize,
                fuse_attention=self.fuse_attention,
                cache_dir=cache_dir,
                cache_size=self.cache_size,
            )
        return self._embedder


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file that Dagster writes; ``database`` may be a path or an ``md:`` URI.

    An empty ``database`` means the warehouse the ``settings`` dependency names
    (``settings.warehouse`` in ``symbiotic.yaml``, ``$SYMBIOTIC_WAREHOUSE``, else
    ``$SYMBIOTIC_HOME/warehouse.duckdb``), resolved when a run starts, so the code
    location reads no configuration at import and a run handed other settings writes
    the warehouse of those settings.
    """

    database: str = ""
    settings: dg.ResourceDependency[SettingsResource] = Field(default_factory=_default_settings)

    def create_resource(self, context: dg.InitResourceContext) -> "WarehouseResource":
        """The instance assets receive: this one, with ``database`` resolved when it was empty."""
        if self.database:
            return self
        return WarehouseResource(database=self.resolved_database(), settings=self.settings)

    def resolved_database(self) -> str:
        """``database``, or the settings' warehouse when it is empty."""
        return self.database or self.settings.get_settings().warehouse

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.resolved_database(), read_only=read_only) as con:
            yield con
