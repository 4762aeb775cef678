"""Merge Assist core, by bounded context: the kernel (``platform``), the merge queue
(``queue``), the live feed (``live``), the event log (``audit``) and administration
(``admin``), all free of AWS and GitLab client code.

Adapters (``merge_assist.adapters``) implement each context's ports; every function's
``wiring.py`` puts the two together.
"""

__version__ = "0.1.0"
