"""The `wharf` command: the composition root, the only module that imports every service."""
