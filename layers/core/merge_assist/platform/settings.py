"""Process configuration, read from the environment (names in
``merge_assist.platform.resources``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from merge_assist.platform.resources import DEFAULT_PREFIX, ENV_PREFIX, ResourceNames


class PollIntervals(BaseModel):
    """How long a workflow waits for a pipeline webhook before asking GitLab itself, and how
    often it asks whether a rebase is done. Each execution gets them in its input, so a test
    run can wait seconds where production waits minutes."""

    model_config = ConfigDict(frozen=True)

    pipeline_poll_seconds: int = Field(default=300, ge=1, le=3600)
    rebase_poll_seconds: int = Field(default=5, ge=1, le=600)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    resource_prefix: str = Field(default=DEFAULT_PREFIX, min_length=1, max_length=40)
    table_name: str | None = None
    bot_token_secret: str | None = None
    gitlab_url: str = "https://gitlab.com"
    state_machine_arn: str | None = None
    # How long a workflow waits for a pipeline webhook before asking GitLab itself, and how
    # often it asks whether a rebase is done. Executions get them in their input.
    pipeline_poll_seconds: int = Field(default=300, ge=1, le=3600)
    rebase_poll_seconds: int = Field(default=5, ge=1, le=600)
    # Where the workflow's git work happens; a warm Lambda reuses what it fetched.
    git_work_dir: str = "/tmp/merge-assist-git"  # noqa: S108 - Lambda's only writable place
    git_user_name: str = "Merge Assist"
    git_user_email: str = "merge-assist@noreply.invalid"
    # Finished batches and expired locks are kept this long before DynamoDB's TTL removes them.
    history_days: int = Field(default=90, ge=1, le=3650)
    # The Cognito user pool whose access tokens the API and the WebSocket accept.
    user_pool_id: str | None = None
    user_pool_client_id: str | None = None
    # Derived from the pool and the region unless given (the local stack's keys are served
    # by moto, not by cognito-idp.<region>.amazonaws.com).
    token_issuer: str | None = None
    jwks_url: str | None = None
    region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    # What GitLab's hooks post to; onboarding through the API registers it.
    webhook_url: str | None = None
    # The SNS topic of the deployment's alarms; a connected project's queue alarms notify it.
    alarm_topic_arn: str | None = None
    # The dashboard's open WebSocket connections, and where messages to them are posted
    # (the WebSocket stage's https callback URL, API Gateway's management API).
    connections_table: str | None = None
    websocket_callback_url: str | None = None

    @property
    def names(self) -> ResourceNames:
        return ResourceNames(self.resource_prefix)

    @property
    def resolved_token_issuer(self) -> str | None:
        if self.token_issuer:
            return self.token_issuer
        if not self.user_pool_id:
            return None
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    @property
    def resolved_jwks_url(self) -> str | None:
        issuer = self.resolved_token_issuer
        return self.jwks_url or (f"{issuer}/.well-known/jwks.json" if issuer else None)

    @property
    def resolved_table_name(self) -> str:
        return self.table_name or self.names.table

    @property
    def resolved_connections_table(self) -> str:
        return self.connections_table or self.names.connections_table

    @property
    def polls(self) -> PollIntervals:
        return PollIntervals(
            pipeline_poll_seconds=self.pipeline_poll_seconds,
            rebase_poll_seconds=self.rebase_poll_seconds,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
