"""The wire protocol between the gateway's Lambdas and the device bridges.

Pure standard-library Python with no AWS imports: it ships in the Lambda package (as part
of chalicelib) and in the bridge's distribution, so both sides share one definition of
what travels between them.
"""
