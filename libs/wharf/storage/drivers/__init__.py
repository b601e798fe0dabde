"""Storage drivers; each module is imported on first use by `wharf.storage.registry`."""
