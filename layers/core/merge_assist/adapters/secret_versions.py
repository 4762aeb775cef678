"""``SecretVersions`` on Secrets Manager: a secret's versions and their staging labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


def _not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ResourceNotFoundException"


class SecretsManagerVersions:
    def __init__(self, client: SecretsManagerClient | None = None) -> None:
        self._client = client or boto3.client("secretsmanager")

    def rotation_enabled(self, secret_id: str) -> bool:
        return bool(self._client.describe_secret(SecretId=secret_id).get("RotationEnabled"))

    def stages(self, secret_id: str) -> dict[str, list[str]]:
        described = self._client.describe_secret(SecretId=secret_id)
        return {
            version: list(labels)
            for version, labels in described.get("VersionIdsToStages", {}).items()
        }

    def value(self, secret_id: str, *, version_id: str | None = None, stage: str) -> str | None:
        request: dict[str, Any] = {"SecretId": secret_id, "VersionStage": stage}
        if version_id is not None:
            request["VersionId"] = version_id
        try:
            found = self._client.get_secret_value(**request)
        except ClientError as error:
            # A version Secrets Manager added for a rotation has no value until it is put.
            if _not_found(error):
                return None
            raise
        value = found.get("SecretString")
        return str(value) if value is not None else None

    def put(self, secret_id: str, version_id: str, value: str, *, stage: str) -> None:
        # The version id as request token: a second put of the same value changes nothing.
        self._client.put_secret_value(
            SecretId=secret_id,
            ClientRequestToken=version_id,
            SecretString=value,
            VersionStages=[stage],
        )

    def move_stage(
        self, secret_id: str, stage: str, *, to_version: str, from_version: str | None
    ) -> None:
        request: dict[str, Any] = {
            "SecretId": secret_id,
            "VersionStage": stage,
            "MoveToVersionId": to_version,
        }
        if from_version is not None:
            request["RemoveFromVersionId"] = from_version
        self._client.update_secret_version_stage(**request)

    def remove_stage(self, secret_id: str, stage: str, *, version_id: str) -> None:
        self._client.update_secret_version_stage(
            SecretId=secret_id, VersionStage=stage, RemoveFromVersionId=version_id
        )
