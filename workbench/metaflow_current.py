"""``from metaflow.metaflow_current import current`` keeps working after the import swap."""

from .flowspec import current

__all__ = ["current"]
