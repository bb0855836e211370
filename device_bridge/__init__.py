"""The device bridge: long-polls the gateway's SQS queues, sends SMS, reports back."""

from __future__ import annotations

DISTRIBUTION = "chinqit-gateway"


def _version() -> str:
    """The installed distribution's version, else (a source checkout) pyproject.toml's."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        with pyproject.open("rb") as file:
            return tomllib.load(file)["project"]["version"]


__version__ = _version()
