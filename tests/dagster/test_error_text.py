"""The error line a card shows: innermost cause, no repeated (qualified) class, no colour codes."""

from types import SimpleNamespace

from dagster_monitoring.translator import default_error_text


def error(cls_name, message, cause=None):
    return SimpleNamespace(cls_name=cls_name, message=message, cause=cause)


def test_qualified_class_prefix_and_ansi_codes_are_dropped():
    dbt = error("DagsterDbtCliRuntimeError", "dagster_dbt.errors.DagsterDbtCliRuntimeError: dbt \x1b[31mFAIL\x1b[0m 1 test\n")
    assert default_error_text(dbt) == ("DagsterDbtCliRuntimeError", "dbt FAIL 1 test")


def test_innermost_cause_and_plain_prefix():
    wrapped = error("DagsterExecutionStepExecutionError", "step failed", cause=error("ValueError", "ValueError: bad principal"))
    assert default_error_text(wrapped) == ("ValueError", "bad principal")
    assert default_error_text(None) == (None, None)
