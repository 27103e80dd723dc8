"""Providers that turn the world into immutable snapshots of Kubernetes objects.

The file provider (``watcher.files``) reads a directory of YAML/JSON; later providers read a
Kubernetes API server. Both publish ``ObjectSnapshot`` values. The watcher never imports the
translator: the contract between them is plain Kubernetes JSON bodies.
"""

from watcher.objects import KINDS, LoadError, ObjectKey, ObjectSnapshot

__all__ = ["KINDS", "LoadError", "ObjectKey", "ObjectSnapshot"]
