"""Operator tools (``chinqit-admin``): provisioning, API keys, devices, OAuth2 clients.

Not part of the Lambda package: it runs on an operator's machine or in CI.
"""
