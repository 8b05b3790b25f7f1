"""The only package that imports Ray: the bounded, fault-tolerant pool, the progress hub
and the job client (``pool``), actor-held row blocks (``blocks``), and a spec
submitted as a Ray job (``submit``)."""
