def test_ok_a():
    assert True


def test_ok_b():
    assert True
