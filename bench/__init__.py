"""Benchmarks that print figures: the webhook receiver, the queue against marge-bot, the
queue under faults, and the usage meter with its cost model."""
