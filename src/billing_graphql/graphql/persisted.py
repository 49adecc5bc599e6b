"""Trusted documents: the operations of ``queries/`` registered by SHA-256 in ``queries/manifest.json``.

The manifest is Apollo's persisted-query manifest (``{"format": "apollo-persisted-query-manifest",
"version": 1, "operations": [{"id", "name", "type", "body"}]}``, ``id`` the SHA-256 hex of ``body``).
A client may send ``{"documentId": "<id>", "variables": ...}`` or Apollo's
``{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "<id>"}}}`` instead of the text; an
unknown id is a ``PERSISTED_QUERY_NOT_FOUND`` error. ``BILLING_TRUSTED_DOCUMENTS`` (``off``, ``partner``,
``all``) refuses, for PARTNER keys or for everyone, any text that is not a registered document.
A registered document's text is the same string on every request, so the parser and validation
caches hold it after its first use.

Where the documents come from: ``queries/`` at the top of the checkout is their one source (clients and
tests read it there). The wheel carries a copy as package data, ``billing_graphql/queries`` (mapped at
build time by ``[tool.hatch.build.targets.wheel.force-include]`` in pyproject.toml), read through
``importlib.resources``; where the package has none (an editable install, ``PYTHONPATH=src``) the
checkout's own ``queries/`` is read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from billing_graphql.domain.roles import Role

MANIFEST_FORMAT = "apollo-persisted-query-manifest"
CHECKOUT_QUERIES_DIR = Path(__file__).resolve().parents[3] / "queries"


def registered_documents_dir() -> Traversable:
    """The registered documents the installed package carries, else the checkout's ``queries/``."""
    packaged = resources.files("billing_graphql").joinpath("queries")
    return packaged if packaged.is_dir() else CHECKOUT_QUERIES_DIR


QUERIES_DIR = registered_documents_dir()
_OPERATION = re.compile(r"^\s*(query|mutation|subscription)\s+(\w+)", re.MULTILINE)


def document_id(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _graphql_files(
    directory: Traversable, parts: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Traversable]]:
    """Every ``.graphql`` file under ``directory`` with its path as parts (a package's files need not be on disk)."""
    for entry in directory.iterdir():
        if entry.is_dir():
            yield from _graphql_files(entry, (*parts, entry.name))
        elif entry.name.endswith(".graphql"):
            yield (*parts, entry.name), entry


def build_manifest(queries_dir: Traversable | None = None) -> dict:
    """The manifest for every ``.graphql`` file under ``queries_dir`` (default ``QUERIES_DIR``), in path order."""
    operations = []
    for _, path in sorted(_graphql_files(queries_dir or QUERIES_DIR), key=lambda item: item[0]):
        body = path.read_text(encoding="utf-8")
        match = _OPERATION.search(body)
        if match is None:
            raise ValueError(f"{path}: no named operation")
        operations.append({"id": document_id(body), "name": match[2], "type": match[1], "body": body})
    return {"format": MANIFEST_FORMAT, "version": 1, "operations": operations}


def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class TrustedDocuments:
    bodies: dict[str, str]  # id -> body
    require: str = "off"  # off | partner | all
    source: str = ""  # the manifest they were read from (or looked for)

    @classmethod
    def load(cls, path: Traversable | None = None, require: str = "off") -> TrustedDocuments:
        path = path or QUERIES_DIR / "manifest.json"
        if not path.is_file():
            return cls({}, require, str(path))
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != MANIFEST_FORMAT or manifest.get("version") != 1:
            raise ValueError(f"{path} is not an Apollo persisted-query manifest, version 1")
        return cls({operation["id"]: operation["body"] for operation in manifest["operations"]}, require, str(path))

    def missing(self) -> str | None:
        """Why a server must not start with these documents: trusted documents on, none found."""
        if self.require != "off" and not self.bodies:
            return (f"BILLING_TRUSTED_DOCUMENTS={self.require} but there are no registered documents "
                    f"({self.source} is missing or empty): every such request would be refused")
        return None


def requested_id(data: dict) -> str | None:
    """The document id a request body names: ``documentId`` or Apollo's persistedQuery extension."""
    if isinstance(data.get("documentId"), str):
        return data["documentId"]
    extensions = data.get("extensions")
    persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
    if isinstance(persisted, dict) and isinstance(persisted.get("sha256Hash"), str):
        return persisted["sha256Hash"]
    return None


def with_document_id(data: object) -> object:
    """Carry a top-level ``documentId`` into the request's extensions (where Strawberry passes it on)."""
    if isinstance(data, dict) and isinstance(data.get("documentId"), str):
        extensions = data.get("extensions") if isinstance(data.get("extensions"), dict) else {}
        data = {**data, "extensions": {**extensions, "persistedQuery": {"version": 1,
                                                                        "sha256Hash": data["documentId"]}}}
    return data


def _error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def persisted_documents_extension(documents: TrustedDocuments) -> type[SchemaExtension]:
    class PersistedDocuments(SchemaExtension):
        """Fill in a registered document's text; refuse unknown ids and, when required, free text."""

        def on_operation(self) -> Iterator[None]:
            context = self.execution_context
            wanted = requested_id({"extensions": context.operation_extensions})
            if wanted is not None:
                body = documents.bodies.get(wanted)
                if body is None or (context.query and document_id(context.query) != wanted):
                    raise _error("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
                context.query = body
            elif documents.require != "off" and context.query is not None:
                actor = getattr(context.context, "actor", None)
                applies = documents.require == "all" or (actor is not None and actor.role is Role.PARTNER)
                if applies and document_id(context.query) not in documents.bodies:
                    raise _error("Only registered documents are accepted here: send their documentId.",
                                 "FORBIDDEN")
            yield

    return PersistedDocuments
