"""Entry point (group maas.extensions): mounts this package on the app; maas never imports it."""

from __future__ import annotations

from fastapi import FastAPI

from maas.service import Service


def extend(app: FastAPI, service: Service) -> None:
    """Nothing mounted yet."""
