"""kiln.data's name for the atomic file writes of ``kiln._atomic`` (which lives below
every layer, so that ``Module.save`` can write files without importing kiln.data)."""

from kiln._atomic import atomic_path, atomic_write, claim_folder, remove_stale_parts

__all__ = ["atomic_path", "atomic_write", "claim_folder", "remove_stale_parts"]
