"""Adapters: the only modules of the core package that talk to AWS or GitLab clients."""
