"""The registry service: the OCI Distribution API under /v2/."""
