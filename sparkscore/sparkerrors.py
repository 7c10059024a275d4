"""What a failed Spark job says, read: the one line a user sees, and which task made it fail.

Spark wraps what a task raised in a Py4J, pyspark or Spark Connect error whose text holds the
task's Python traceback, or Spark's reason for losing the task; the driver and the console
both need it said in one line.
"""

from __future__ import annotations

import re

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException

__all__ = ["STAGE_FAILURE", "failed_task", "failure_line", "text_of"]

# How Spark says a task failed every attempt; a lost connection to the JVM (an interrupted run)
# or a driver-side error says something else, and is the run's error as it is.
STAGE_FAILURE = "Job aborted due to stage failure"


def text_of(error: BaseException) -> str:
    """An error's text; a Py4J error asks the JVM for it, and the JVM may be gone."""
    try:
        return str(error)
    except Exception:
        return ""


def failed_task(text: str) -> int | None:
    """The task whose failure made Spark abort the job, from Spark's message ("Task 3 in stage
    0.0 failed 4 times"), when it says: its partition, counted from 0."""
    m = re.search(r"Task (\d+) in stage [\d.]+ failed", text)
    return None if m is None else int(m.group(1))


_TRACEBACK = "Traceback (most recent call last):"


_CHAINED = (
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
)


# Spark's reason for a task it lost: `... most recent failure: Lost task 0.3 in stage 1.0
# (TID 4) (host executor driver): org.apache.spark.SparkException: Python worker exited ...`
_LOST_TASK = re.compile(r"most recent failure: Lost task [^\n]*?\(TID \d+\) \([^)\n]*\): ([^\n]+)")


def failure_line(e: Exception) -> str:
    """A failed job in one line: what a Spark task raised (found in the text of the Py4J,
    pyspark or Spark Connect error that wraps it), else why Spark lost the task, else the error
    itself."""
    if not isinstance(e, (Py4JJavaError, PySparkException)):
        return f"the job failed: {_first_line(e)}"
    try:
        text = str(e)
    except Exception:  # a Py4J error asks the JVM for its text, and the JVM may be gone
        return f"the job failed: {type(e).__name__}"
    raised = _task_exception(text)
    if raised is None:
        lost = _LOST_TASK.search(text)
        raised = _short_type(lost.group(1)) if lost else None
    if raised is not None:
        return f"a Spark task failed: {raised}"
    if isinstance(e, Py4JJavaError):
        # "An error occurred while calling o42.collect.\n: java.io.IOException: ...": the second
        # part says what happened.
        java = text.partition("\n: ")[2].strip().splitlines()
        if java:
            return f"the job failed: {_short_type(java[0])}"
    return f"the job failed: {_first_line(e)}"


def _task_exception(text: str) -> str | None:
    """The first line of the exception a Python traceback in `text` ends with (the one raised
    last, when it chains others), as `Type: message`."""
    start = text.find(_TRACEBACK)
    if start < 0:
        return None
    raised = None
    for line in text[start:].splitlines()[1:]:
        if line.startswith("\tat "):  # the JVM's own stack: the Python part is over
            break
        if line.strip() in _CHAINED:
            raised = None  # the exception raised last follows, with its own traceback
        elif raised is None and line[:1].strip() and line != _TRACEBACK:
            raised = line  # frames are indented; the exception is not
    return _short_type(raised) if raised else None


def _short_type(line: str) -> str:
    """`pyarrow.lib.ArrowInvalid: ...` as `ArrowInvalid: ...`: the class names the failure."""
    name, sep, message = line.strip().partition(": ")
    if re.fullmatch(r"[A-Za-z_][\w.$]*", name):
        name = name.rsplit(".", 1)[-1]
    return name + sep + message


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"
