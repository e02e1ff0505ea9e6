import time

import pytest

WORDS = ["apple", "banana", "cherry", "date", "elderberry", "fig", "grape", "honeydew"]


@pytest.mark.parametrize("word", WORDS)
def test_word_is_lowercase(word):
    time.sleep(0.05)
    assert word == word.lower()


def test_join():
    assert ", ".join(["a", "b"]) == "a, b"


def test_title_case():
    assert "hello world".title() == "Hello world"  # fails: shows a string diff


class TestSplit:
    def test_split_default(self):
        assert "a b  c".split() == ["a", "b", "c"]

    def test_split_separator(self):
        assert "a,b,,c".split(",") == ["a", "b", "c"]  # fails: shows a list diff

    def test_partition(self):
        assert "key=value".partition("=") == ("key", "=", "value")
