"""What a cold Lambda container pays for: one DynamoDB client, whatever the tables."""

from chalicelib import models


def test_every_model_and_transaction_share_one_dynamodb_client(aws):
    connections = {id(model._get_connection().connection) for model in models.ALL_MODELS}
    assert connections == {id(models.connection())}
    clients = {id(model._get_connection().connection.client) for model in models.ALL_MODELS}
    assert len(clients) == 1
