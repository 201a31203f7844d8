"""Metaflow's exception names, so ``from metaflow.exception import X`` works after the import swap.

A flow raises or catches these exactly as it would under Metaflow. The client raises
``MetaflowNotFound`` (an object that does not exist), ``MetaflowNamespaceMismatch`` (an object outside
the current namespace), ``MetaflowInvalidPathspec`` and ``MetaflowTaggingError``. ``MetaflowException``
is also a :class:`~workbench.errors.WorkbenchError`, so a front end prints it as one line.
"""

from __future__ import annotations

from typing import Optional

from .errors import WorkbenchError


def metaflow_type_name(cls: type) -> str:
    """The ``module.Class`` name a caught exception reports as its ``type``, as Metaflow reports it.

    workbench's stand-ins for Metaflow's own exceptions report Metaflow's name: those of this module
    as ``metaflow.exception.X``, others through a ``metaflow_type`` set on the class itself (the @timeout
    and @catch exceptions of workbench.task). A flow that compares ``ex.type`` with
    ``"metaflow.exception.ExternalCommandFailed"`` then behaves as under Metaflow. Every other class
    (builtins, the user's own, subclasses of these) reports its real module and name.
    """
    own = cls.__dict__.get("metaflow_type")
    if isinstance(own, str):
        return own
    if cls.__module__ == __name__:
        return f"metaflow.exception.{cls.__name__}"
    return f"{cls.__module__}.{cls.__name__}"


class MetaflowExceptionWrapper(Exception):
    """An exception from a task, carried as its type name, message and traceback text."""

    def __init__(self, exc: Optional[BaseException] = None):
        super().__init__()
        if exc is not None:
            self.type = metaflow_type_name(type(exc))
            self.exception = str(exc)
            import traceback

            self.stacktrace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        else:
            self.type = self.exception = self.stacktrace = ""

    def __repr__(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return f"{self.type}: {self.exception}" if self.type else self.exception


class MetaflowException(WorkbenchError):
    """Base of Metaflow's exceptions: a ``headline`` and a message (and where, when known)."""

    headline = "Flow failed"
    exit_code = 1

    def __init__(self, msg: str = "", lineno: Optional[int] = None, source_file: Optional[str] = None):
        self.line_no = lineno
        self.source_file = source_file
        super().__init__(msg, path=source_file, line=lineno)


class ParameterFieldFailed(MetaflowException):
    headline = "Parameter field failed"

    def __init__(self, name: str, field: str):
        super().__init__(f"Parameter *{name}*: the field *{field}* failed to evaluate")


class ParameterFieldTypeMismatch(MetaflowException):
    headline = "Parameter field with a mismatching type"


class ExternalCommandFailed(MetaflowException):
    headline = "External command failed"


class MetaflowNotFound(MetaflowException):
    headline = "Object not found"


class MetaflowNamespaceMismatch(MetaflowException):
    headline = "Object not in the current namespace"

    def __init__(self, namespace: Optional[str]):
        super().__init__(f"Object not in namespace '{namespace}'")


class MetaflowInvalidPathspec(MetaflowException):
    headline = "Invalid pathspec"


class MetaflowInternalError(MetaflowException):
    headline = "Internal error"


class MetaflowTaggingError(MetaflowException):
    headline = "Tagging error"


class MetaflowUnknownUser(MetaflowException):
    headline = "Unknown user"

    def __init__(self):
        super().__init__("Metaflow could not determine your user name based on environment variables ($USERNAME etc.)")


class InvalidDecoratorAttribute(MetaflowException):
    headline = "Unknown decorator attribute"


class CommandException(MetaflowException):
    headline = "Invalid command"


class MetaflowDataMissing(MetaflowException):
    headline = "Data missing"


class UnhandledInMergeArtifactsException(MetaflowException):
    headline = "Unhandled artifacts in merge"

    def __init__(self, msg: str, unhandled):
        super().__init__(msg)
        self.artifact_names = unhandled


class MissingInMergeArtifactsException(MetaflowException):
    headline = "Missing artifacts in merge"

    def __init__(self, msg: str, unhandled):
        super().__init__(msg)
        self.artifact_names = unhandled
