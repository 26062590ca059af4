"""A small retrieval library: load -> clean -> chunk -> embed -> store -> search."""
