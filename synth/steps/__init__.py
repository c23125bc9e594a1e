"""Built-in steps; each module registers its own with `@registry.step`."""
