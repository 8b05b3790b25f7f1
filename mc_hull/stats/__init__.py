"""Statistics of the pure core: clustered intervals (``intervals``), the K rule, cost model
and memory budget (``design``), the 50% point (``thresholds``) and distance summaries
(``distances``)."""
