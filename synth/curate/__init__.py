"""Between a finished run and a training set: reading inputs, dedup, decontamination,
diversity, the collapse monitor, mixing with real data, export and selection."""
