"""Third module named test_common.py, one level deeper."""


def test_level(level):
    assert level == "pkg_a/sub"


class TestDeep:
    def test_module_name(self):
        assert __name__ == "pkg_a.sub.test_common"
