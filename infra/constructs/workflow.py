"""The Step Functions state machines of ``merge_assist.platform.resources.STATE_MACHINES``,
defined by the same ASL files in ``statemachines/`` that the local stack executes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import REPO_ROOT
from infra.constructs import LOG_RETENTION, pascal_case
from infra.nag import acknowledge
from merge_assist.platform.resources import STATE_MACHINES, ResourceNames, StateMachineSpec

STATEMACHINES_DIR = REPO_ROOT / "statemachines"

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")


def definition_placeholders(definition: Path) -> set[str]:
    return set(_PLACEHOLDER.findall(definition.read_text(encoding="utf-8")))


def check_placeholders(spec: StateMachineSpec, definition: Path) -> None:
    """CloudFormation leaves an unknown ``${Placeholder}`` in the definition as it is, and the
    state machine then fails at run time; catch a mismatch at synth instead."""
    in_file = definition_placeholders(definition)
    declared = set(spec.function_placeholders)
    if in_file != declared:
        raise ValueError(
            f"{definition.name}: placeholders {sorted(in_file)} do not match "
            f"merge_assist.platform.resources.STATE_MACHINES[{spec.key!r}].function_placeholders "
            f"{sorted(declared)}"
        )


class Workflow(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        self.state_machines: dict[str, sfn.StateMachine] = {
            spec.key: self._state_machine(spec, names, functions) for spec in STATE_MACHINES
        }

    def _state_machine(
        self,
        spec: StateMachineSpec,
        names: ResourceNames,
        functions: Mapping[str, lambda_.IFunction],
    ) -> sfn.StateMachine:
        definition = STATEMACHINES_DIR / spec.definition_file
        check_placeholders(spec, definition)
        construct_id = pascal_case(spec.key)
        name = names.state_machine(spec.key)
        # The /aws/vendedlogs/ prefix keeps Step Functions from adding a statement per log
        # group to the account's size-limited CloudWatch Logs resource policy.
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            log_group_name=f"/aws/vendedlogs/states/{name}",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        invoked = [functions[key] for key in sorted(set(spec.function_placeholders.values()))]
        state_machine = sfn.StateMachine(
            self,
            construct_id,
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(definition)),
            definition_substitutions={
                placeholder: functions[key].function_arn
                for placeholder, key in spec.function_placeholders.items()
            },
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
        )
        # Only the unqualified ARNs the definition is given: Function.grant_invoke would add
        # "<arn>:*" for every version and alias, which the definition never calls.
        if invoked:
            state_machine.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[function.function_arn for function in invoked],
                )
            )
        acknowledge(
            state_machine,
            "AwsSolutions-IAM5",
            "Step Functions log delivery (logs:CreateLogDelivery and related actions) and the "
            "X-Ray tracing actions do not support resource-level permissions.",
            findings=["Resource::*"],
        )
        return state_machine
