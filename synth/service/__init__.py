"""The HTTP service: app, job supervisor, job specs, auth, OpenAPI, metrics."""
