"""The project's version: one number for every package and command, from the installed
metadata of revops-events (the CHANGELOG says what each version changed)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version


def project_version() -> str:
    try:
        return package_version("revops-events")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"
