"""LLM judges: rubric scoring and pairwise comparison."""
