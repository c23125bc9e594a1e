"""Built-in verifiers; each module registers its own with `@registry.verifier`."""
