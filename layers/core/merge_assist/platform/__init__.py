"""The shared kernel: the GitLab event model and its parsing, project configuration,
settings, resource names, shared ports, errors, the clock, roles and access, and the
metrics catalogue."""
