"""A GitLab simulator for local runs and tests: REST API v4 subset, git smart HTTP over real
repositories, simulated CI and webhooks. See README.md for what it covers."""

from local.gitlab_sim.simulator import GitLabSimulator, run_forever

__all__ = ["GitLabSimulator", "run_forever"]
