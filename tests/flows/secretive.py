"""@secrets: values in the task's environment from a local file and from AWS Secrets Manager."""

import os

from workbench import FlowSpec, Parameter, secrets, step


class SecretFlow(FlowSpec):
    source = Parameter("source", default="local-file.db")

    @secrets(sources=["local-file.db"])
    @step
    def start(self):
        self.seen_local = os.environ.get("DB_PASSWORD") == "hunter2"
        self.next(self.cloud)

    @secrets(sources=[{"type": "aws-secrets-manager", "id": "prod/api"}])
    @step
    def cloud(self):
        self.seen_cloud = os.environ.get("API_TOKEN") == "tok-123" and os.environ.get("api_user") == "bob"
        self.next(self.end)

    @step
    def end(self):
        self.leaked = "DB_PASSWORD" in os.environ or "API_TOKEN" in os.environ
        print("local", self.seen_local, "cloud", self.seen_cloud, "leaked", self.leaked)
