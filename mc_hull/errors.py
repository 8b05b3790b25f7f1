"""Exceptions that the command line shows as one line with exit status 2."""


class McHullError(Exception):
    """Base class: a problem with the user's input or environment, shown as one line."""


class SpecError(McHullError, ValueError):
    """An experiment spec field is missing, malformed or out of range."""


class InputError(McHullError, ValueError):
    """Arrays or files handed to mc_hull are malformed (shape, NaN/inf, type)."""


class StoreError(McHullError):
    """The results location cannot be used (not a directory, not writable, another run)."""


class UndecidedError(McHullError, RuntimeError):
    """Some membership queries could not be certified by any method."""


class PlanError(McHullError):
    """A run's plan cannot run here (too many shards, a worker's memory, an unusable cluster)."""


class ComputeError(McHullError, RuntimeError):
    """A unit of work failed while computing (not the user's input): one line, exit status 1.

    Raised in place of an unexpected exception so that a run never ends in a traceback after
    its record is written; committed units are kept and a re-run resumes.  Set
    ``MC_HULL_DEBUG=1`` to see the original traceback.
    """
