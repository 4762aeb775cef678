"""The REST API v4 subset: one module per resource family."""
