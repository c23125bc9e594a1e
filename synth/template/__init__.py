"""Faker record templates: loading, fields, checks, closures, expressions."""
