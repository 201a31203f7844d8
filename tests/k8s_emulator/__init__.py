"""Kubernetes API server emulator for the test-suite (see server.KubeEmulator)."""

from .server import KubeEmulator

__all__ = ["KubeEmulator"]
