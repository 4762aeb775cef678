"""Web: the dashboard single-page app.

Filled by the dashboard concern: the S3 bucket holding the built ``web/`` files, the CloudFront
distribution serving them (and routing ``/api`` to the HTTP API), and the distribution's URL
added to the Cognito app client's callback and sign-out URLs.
"""
