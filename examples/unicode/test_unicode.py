"""Odd text everywhere: ids, output, exception messages (incl. lone surrogates)."""
import sys

import pytest


@pytest.mark.parametrize("word", ["naïve", "日本語", "emoji🎉", "tab\tsep", "nul\x00byte"])
def test_params(word):
    assert word


def test_output_passes():
    print("héllo wörld 🎉")
    sys.stdout.buffer.write(b"raw \xff\xfe bytes\n")
    sys.stderr.write("stderr ünïcode\n")


def test_lone_surrogate_in_message():
    raise ValueError("bad \udc80 byte")


def test_unicode_assert_diff():
    assert "straße" == "strasse"


def test_output_then_fail():
    print("ausgabe: äöü")
    sys.stdout.buffer.write(b"\xc3\x28 invalid utf-8\n")
    assert False, "schlägt fehl"
