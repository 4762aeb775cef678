"""Acknowledging cdk-nag findings.

cdk-nag 3 runs as a CDK policy-validation plugin and reads acknowledgements recorded with
CDK's own ``Validations`` API; a finding of a multi-finding rule (IAM5) is acknowledged by its
id, ``AwsSolutions-IAM5[Resource::...]``. An acknowledgement covers the construct and every
construct below it.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from constructs import IConstruct

# A reason must let a reviewer judge the decision without asking its author.
MIN_REASON_WORDS = 10


def acknowledge(scope: IConstruct, rule: str, reason: str, *, findings: Iterable[str] = ()) -> None:
    if len(reason.split()) < MIN_REASON_WORDS:
        raise ValueError(
            f"the reason for acknowledging {rule} on {scope.node.path} needs at least "
            f"{MIN_REASON_WORDS} words: {reason!r}"
        )
    ids = [f"{rule}[{finding}]" for finding in findings] or [rule]
    for rule_id in ids:
        Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def arn_finding(resource: IConstruct, suffix: str = "") -> str:
    """The IAM5 finding id cdk-nag reports for ``<resource's ARN><suffix>`` in a policy."""
    element = resource.node.default_child if not isinstance(resource, CfnElement) else resource
    if not isinstance(element, CfnElement):
        raise TypeError(f"{resource.node.path} has no CloudFormation resource to name")
    return f"Resource::<{Stack.of(element).get_logical_id(element)}.Arn>{suffix}"


def stack_arn_finding(service: str, resource: str) -> str:
    """The IAM5 finding id for an ARN that ``Stack.format_arn`` builds in the stack's own
    partition, region and account, ``resource`` being everything after the account."""
    return f"Resource::arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{resource}"
