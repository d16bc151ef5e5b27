"""Scale-out: batch verbs on Ray (``--engine ray``). Nothing here imports Ray until asked."""
