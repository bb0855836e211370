"""The local stack behind `make run`: embedded AWS, the API, and (later) the bridge."""
