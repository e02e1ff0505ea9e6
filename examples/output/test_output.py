"""Captured stdout/stderr/logging in passing and failing tests and fixtures."""
import logging
import sys

log = logging.getLogger("example.output")


def test_print_stdout_pass():
    print("hello from stdout (passing test)")


def test_print_stderr_pass():
    print("hello from stderr (passing test)", file=sys.stderr)


def test_print_then_fail():
    print("stdout before failure")
    print("stderr before failure", file=sys.stderr)
    assert 0, "failing after printing"


def test_logging_levels_fail():
    log.debug("debug message")
    log.info("info message")
    log.warning("warning message")
    log.error("error message")
    log.critical("critical message")
    assert False, "failing after logging"


def test_logging_pass():
    log.warning("warning in a passing test")


def test_unicode_output_fail():
    print("unicode: héllo wörld ☃ 日本語 ✓")
    assert "☃" == "✓"


def test_many_lines_fail():
    for i in range(50):
        print(f"line {i:03d} of a long captured output")
    assert False


def test_fixture_output_pass(noisy_fixture):
    print("call stdout in test_fixture_output_pass")
    assert noisy_fixture == "noisy"


def test_fixture_output_fail(noisy_fixture):
    print("call stdout in test_fixture_output_fail")
    assert noisy_fixture == "quiet"


def test_teardown_error_with_output(noisy_broken_teardown):
    print("call stdout, then the teardown explodes")


def test_no_newline_output_pass():
    sys.stdout.write("partial line without newline")
