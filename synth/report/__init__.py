"""HTML reports for runs and nightly batches."""
