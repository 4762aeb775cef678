"""Ops: keeping the deployment observable and on schedule.

Filled by the operations concern: EventBridge schedules (the watcher that catches missed
webhooks, the daily aggregates), CloudWatch alarms on the functions, the state machines, the
queues' dead-letter queues and the API, and the SNS topic that routes alarms to email, Slack or
Teams.
"""
