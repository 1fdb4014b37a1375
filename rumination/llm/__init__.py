"""Talking to the model's server: the OpenAI-compatible client, endpoints and retries, TLS, token
counting, the model's turn format, `serve` and `doctor`."""
