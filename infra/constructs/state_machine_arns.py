"""ARNs of the stack's state machines built from their names, for grants made before (or
without) the StateMachine constructs: the definitions name the functions, so a function
that referenced the construct would close a dependency cycle."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from constructs import IConstruct

from infra.nag import stack_arn_finding
from merge_assist.platform.resources import STATE_MACHINES, ResourceNames


def _check_state_machine(key: str) -> None:
    if key not in {machine.key for machine in STATE_MACHINES}:
        raise KeyError(
            f"no state machine {key!r} in merge_assist.platform.resources.STATE_MACHINES"
        )


def named_state_machine_arn(scope: IConstruct, names: ResourceNames, key: str) -> str:
    """The ARN of a state machine of this stack, built from its name alone.

    The state machines' definitions name the functions' ARNs, so a function that references
    the StateMachine construct (in its environment or its role) would close a dependency
    cycle; the name is known up front and is the same in the deployed stack."""
    _check_state_machine(key)
    return Stack.of(scope).format_arn(
        service="states",
        resource="stateMachine",
        resource_name=names.state_machine(key),
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def named_executions_arn(scope: IConstruct, names: ResourceNames, key: str) -> str:
    """Matches every execution of a state machine: ``execution:<state machine>:<execution>``."""
    _check_state_machine(key)
    return Stack.of(scope).format_arn(
        service="states",
        resource="execution",
        resource_name=f"{names.state_machine(key)}:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def executions_finding(names: ResourceNames, key: str) -> str:
    """The IAM5 finding id of :func:`named_executions_arn`."""
    return stack_arn_finding("states", f"execution:{names.state_machine(key)}:*")
