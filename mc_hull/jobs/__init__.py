"""Jobs: keyed units and a pure ``compute(unit) -> rows``. The ``Job`` protocol and the Monte
Carlo job (``base``), lazy shards and the cost model (``plan``), the one row builder and a
Monte Carlo shard's rows (``trial``), and the nested job (``nested``)."""
