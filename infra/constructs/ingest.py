"""Ingest: GitLab webhooks to the merge queue.

Filled by the webhook concern: the ``webhook`` function behind unauthenticated HTTP API routes
(see ``merge_assist.resources.ROUTES``), the per-project SQS FIFO queues and their dead-letter
queues (named by ``ResourceNames.project_queue``; created at onboarding, so IAM is scoped to
``ResourceNames.project_queue_prefix``), the per-project webhook secrets and the ``dispatcher``
function that starts merge-batch executions.
"""
