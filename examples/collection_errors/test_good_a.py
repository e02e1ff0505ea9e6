def test_a1():
    assert True


def test_a2():
    assert True
