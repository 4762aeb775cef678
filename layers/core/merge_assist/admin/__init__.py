"""Administration: connecting projects, grants, configuration changes and recovery."""
