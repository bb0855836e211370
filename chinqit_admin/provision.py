"""The stage's data stack (template.py), and every registered device's own two queues.

Devices' queues are made when a device is registered (the fleet issue moves them into
the template); they dead-letter into the shared queues' dead-letter queues, whose
handlers mark what no device could send as failed.
"""

from __future__ import annotations

import json

from chalicelib import queue, routing
from chalicelib.config import settings

from . import stacks, template


def all_resources(stage: str = "dev") -> dict:
    """The local stack's resources (embedded AWS): the data stack, and devices' queues."""
    return {"stack": stacks.local_resources(stage), "device_queues": _registered_devices()}


def data_and_devices(stage: str) -> dict:
    """The same on a real AWS account (``chinqit-admin --stage prod provision``)."""
    return {"stack": stacks.deploy_data(stage), "device_queues": _registered_devices()}


def _registered_devices() -> dict[str, str]:
    from chalicelib.models import Device

    urls: dict[str, str] = {}
    for device in Device.scan(attributes_to_get=["device_id"]):
        urls |= device_queues(device.device_id)
    return urls


def device_queues(device_id: str) -> dict[str, str]:
    """Create (or bring up to date) a device's own queues; their URLs by name."""
    config = settings()
    urls = {}
    for kind, shared in (("otp", config.priority_queue), ("sms", config.outbound_queue)):
        name = routing.device_queue(device_id, kind)
        properties = template.queue_properties(
            name,
            template.OUTBOUND_VISIBILITY,
            template.OUTBOUND_RETENTION,
            dead_letters=queue.queue_arn(f"{shared}-dlq"),
        )
        urls[name] = _create_or_update(properties)
    return urls


def _create_or_update(properties: dict) -> str:
    """SQS's API takes a queue's CloudFormation properties as strings."""
    attributes = {
        key: json.dumps(value)
        if isinstance(value, dict)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
        for key, value in properties.items()
        if key != "QueueName"
    }
    sqs = queue.sqs()
    try:
        return sqs.create_queue(QueueName=properties["QueueName"], Attributes=attributes)[
            "QueueUrl"
        ]
    except sqs.exceptions.QueueNameExists:  # made by an older release: bring it up to date
        url = queue.queue_url(properties["QueueName"])
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        return url
