"""Merge Assist core: the merge-queue domain, free of AWS and GitLab client code.

Adapters (``merge_assist.adapters``) implement the small interfaces in
``merge_assist.platform.ports``; handlers wire the two together.
"""

__version__ = "0.1.0"
