"""Renders the ASL files of ``statemachines/`` for the local stack, as CloudFormation's
``DefinitionSubstitutions`` does in the cloud.

Only ``${Name}`` tokens whose name is a substitution are replaced; ASL's own ``$``, ``$$.``
and ``.$`` syntax is left alone (``string.Template`` would turn ``$$`` into ``$``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")


class AslRenderError(ValueError):
    pass


def placeholders(definition: str) -> set[str]:
    return set(PLACEHOLDER.findall(definition))


def render(definition: str, substitutions: Mapping[str, str]) -> str:
    missing = placeholders(definition) - substitutions.keys()
    if missing:
        raise AslRenderError(f"no value for placeholder(s) {sorted(missing)}")
    rendered = PLACEHOLDER.sub(lambda match: substitutions[match.group(1)], definition)
    json.loads(rendered)  # a substitution must not break the document
    return rendered


def render_file(path: Path, substitutions: Mapping[str, str]) -> str:
    return render(path.read_text(encoding="utf-8"), substitutions)
