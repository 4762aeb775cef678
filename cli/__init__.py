"""The ``merge-assist`` command line of admins and developers: the local stack, projects,
recovery and benchmarks. Never shipped in a Lambda layer."""
