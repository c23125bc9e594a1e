"""The OpenAPI 3.1 document served at `/openapi.json`. The job request schema is the
same file the service validates with (`schemas/job.json`), so the two cannot drift."""

from __future__ import annotations

from typing import Any


def document(version: str) -> dict[str, Any]:
    from synth.schema import packaged

    job_request = {k: v for k, v in packaged("job.json").items() if not k.startswith("$")}
    err = {"$ref": "#/components/responses/Error"}
    job = {"$ref": "#/components/schemas/Job"}
    job_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}

    def ok(desc: str, schema: dict[str, Any] | None = None, ctype: str = "application/json"):
        body: dict[str, Any] = {"description": desc}
        if schema is not None:
            body["content"] = {ctype: {"schema": schema}}
        return body

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "synth service",
            "version": version,
            "description": "Submit synthetic-data jobs, follow them, and fetch their records "
            "and reports. A bearer token (SYNTH_TOKEN) is required whenever the service "
            "listens on anything but loopback.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/jobs": {
                "post": {
                    "summary": "Submit a job",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": job_request}},
                    },
                    "responses": {
                        "201": ok("Accepted and stored; it runs even if the service restarts", job),
                        "400": err,
                        "401": err,
                        "404": err,
                        "413": err,
                        "415": err,
                        "429": err,
                    },
                },
                "get": {
                    "summary": "List jobs, newest first",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        "200": ok(
                            "Jobs",
                            {
                                "type": "object",
                                "properties": {"jobs": {"type": "array", "items": job}},
                            },
                        )
                    },
                },
            },
            "/v1/jobs/{id}": {
                "get": {
                    "summary": "Status, progress, counts and cost of a job",
                    "parameters": [job_id],
                    "responses": {"200": ok("The job", job), "404": err},
                }
            },
            "/v1/jobs/{id}/records": {
                "get": {
                    "summary": "Kept records as JSONL, streamed and paginated",
                    "description": "Headers: X-Offset, X-Count (records in this page), "
                    "X-Next-Offset, X-Available (records available now).",
                    "parameters": [
                        job_id,
                        {
                            "name": "offset",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                        },
                    ],
                    "responses": {
                        "200": ok(
                            "JSONL, one record per line", {"type": "string"}, "application/x-ndjson"
                        ),
                        "404": err,
                    },
                }
            },
            "/v1/jobs/{id}/report": {
                "get": {
                    "summary": "The self-contained HTML report (a live snapshot while running)",
                    "parameters": [job_id],
                    "responses": {"200": ok("HTML", {"type": "string"}, "text/html"), "404": err},
                }
            },
            "/v1/jobs/{id}/cancel": {
                "post": {
                    "summary": "Cancel a queued or running job",
                    "parameters": [job_id],
                    "responses": {"202": ok("Cancelled", job), "404": err, "409": err},
                }
            },
            "/v1/recipes": {
                "get": {
                    "summary": "Recipes the service can run",
                    "responses": {"200": ok("Recipes")},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness (no auth)",
                    "security": [],
                    "responses": {"200": ok("OK")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": ok("Prometheus text format", {"type": "string"}, "text/plain")
                    },
                }
            },
            "/v1/session": {
                "post": {
                    "summary": "Exchange the token for a session cookie (the dashboard's login)",
                    "security": [],
                    "responses": {"204": ok("Cookie set"), "401": err},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "An error: what is wrong, and the details",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "error": {"type": "string"},
                                    "details": {"type": "array", "items": {"type": "string"}},
                                },
                            }
                        }
                    },
                }
            },
            "schemas": {
                "Job": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "status": {
                            "enum": ["queued", "running", "succeeded", "failed", "cancelled"]
                        },
                        "recipe": {"type": "string"},
                        "n": {"type": "integer"},
                        "seed": {"type": "integer"},
                        "model": {"type": ["string", "null"]},
                        "progress": {"type": "object"},
                        "cost": {"type": "object"},
                        "error": {"type": ["string", "null"]},
                        "links": {"type": "object"},
                    },
                }
            },
        },
    }
