"""Account ids are free-form strings chosen by the operator, except these."""

# Received SMS that no account claims are filed under this id (see devices.owner_of_inbound).
UNASSIGNED = "unassigned"
RESERVED = (UNASSIGNED,)
