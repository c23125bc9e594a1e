"""Text utilities: lexical features, similarity, chunking, noise."""
