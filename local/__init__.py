"""The embedded local stack: AWS emulated by moto, the real handlers run in-process, the real
ASL run by moto's Step Functions interpreter, an HTTP front playing API Gateway, a poller
playing the SQS event source mapping (and, later, the GitLab simulator)."""
