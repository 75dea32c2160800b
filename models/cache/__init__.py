"""Layer: store. The permission cache: Redis key layout, writer and check client (one package, so
the writer and the reader can never disagree about the layout)."""
