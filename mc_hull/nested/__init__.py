"""Entry sizes on a grid of nested prefixes: the search in memory (``search``) and
streamed (``stream``), when X of the largest size exceeds the memory budget."""
