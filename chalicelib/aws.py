"""boto3 clients, created on first use and kept for the life of the Lambda container."""

from __future__ import annotations

import functools


@functools.cache
def client(service: str):
    import boto3  # imported here: the Lambda module's import time stays low (cold start)

    return boto3.client(service)
