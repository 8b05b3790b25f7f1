"""What the faces ask for: the runner and Monte Carlo runs (``runner``), auto grids and
adaptive rounds (``adaptive``), hull-test runs (``hulltest``: where X lives, sweeps) with their inputs
(``datasets``, ``filesource``)."""
