"""Recipe -> verified records on disk: the recipe, the engine, the run directory, shards."""
