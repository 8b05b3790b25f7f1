"""Jobs: keyed units and a pure ``compute(unit) -> rows``. The ``Job`` protocol and the Monte
Carlo job (``base``), lazy shards and the cost model (``plan``), the one row builder and a
Monte Carlo shard's rows (``trial``), the nested job (``nested``) and the hull-test job
(``hulltest``)."""
