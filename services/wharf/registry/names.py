"""Repository names, tags and references, checked against the OCI Distribution grammar.

Wharf keeps repositories in Quay's tables: the first path component is the namespace (a
`user` row) and the rest is the repository name, which may itself hold `/` (Quay's extended
repository names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wharf.registry.errors import NAME_INVALID, RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
MAX_NAME_LENGTH = 255
"""Quay's `repository.name` and `user.username` are varchar(255)."""


@dataclass(frozen=True, slots=True)
class RepositoryName:
    namespace: str
    repository: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.repository}"


def parse_repository_name(name: str) -> RepositoryName:
    """`namespace/repository[/more]`, or a `NAME_INVALID` error saying what is wrong."""
    if not NAME_RE.fullmatch(name):
        raise RegistryError(
            NAME_INVALID,
            {"name": name, "reason": "must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*(/...)*"},
        )
    namespace, sep, repository = name.partition("/")
    if not sep:
        raise RegistryError(
            NAME_INVALID,
            {"name": name, "reason": "must be <namespace>/<repository>"},
        )
    if len(namespace) > MAX_NAME_LENGTH or len(repository) > MAX_NAME_LENGTH:
        raise RegistryError(
            NAME_INVALID,
            {"name": name, "reason": f"components are limited to {MAX_NAME_LENGTH} characters"},
        )
    return RepositoryName(namespace, repository)


def is_tag(reference: str) -> bool:
    return TAG_RE.fullmatch(reference) is not None


def is_digest(reference: str) -> bool:
    return ":" in reference and DIGEST_RE.fullmatch(reference) is not None
