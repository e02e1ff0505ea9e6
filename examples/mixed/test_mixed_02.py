import warnings

import pytest



def test_pass_00():
    assert 2 == 2


def test_pass_01():
    assert [1, 2, 3] == [1, 2, 3]


def test_pass_02():
    assert 'abc'.upper() == 'ABC'


@pytest.mark.parametrize('n', [1, 2, 3])
def test_pass_param_03(n):
    assert n > 0


def test_pass_04():
    pass


def test_pass_05():
    pass


def test_fail_dict_06():
    expected = {'a': 1, 'b': [1, 2, 3], 'c': 'hello world'}
    actual = {'a': 1, 'b': [1, 2, 4], 'c': 'hello there'}
    assert actual == expected


def test_fail_str_07():
    assert 'the quick brown fox jumps' == 'the quick brown cat jumps'


def test_fail_list_08():
    assert list(range(10)) == list(range(1, 11))


def helper_09(x):
    raise ValueError(f'bad value {x}')


def test_fail_exc_09():
    helper_09(2)


@pytest.mark.skip(reason='skipped by marker')
def test_skip_marker_10():
    assert False


@pytest.mark.skipif(True, reason='skipif true')
def test_skipif_11():
    assert False


def test_skip_runtime_12():
    pytest.skip('skipped at runtime')


@pytest.mark.xfail(reason='known bug')
def test_xfail_13():
    assert 1 == 2


def test_xfail_runtime_14():
    pytest.xfail('imperative xfail')


@pytest.mark.xfail(reason='maybe fixed')
def test_xpass_15():
    assert 1 == 1


@pytest.mark.xfail(reason='strict', strict=True)
def test_xpass_strict_16():
    assert 1 == 1


def test_error_setup_17(broken_setup):
    pass


def test_error_teardown_18(broken_teardown):
    assert broken_teardown == 42


def test_print_stdout_19():
    print('hello from stdout 2-19')


def test_print_stderr_20():
    import sys
    print('hello from stderr 2-20', file=sys.stderr)


def test_print_then_fail_21():
    import sys
    print('captured stdout before failure 2-21')
    print('captured stderr before failure 2-21', file=sys.stderr)
    assert 0, 'failing after printing'


def test_warn_user_22():
    warnings.warn('user warning 2-22', UserWarning)


def test_warn_depr_23():
    warnings.warn('deprecated thing', DeprecationWarning)


def test_pass_24():
    assert True


class TestGroup25:
    def test_method(self):
        assert 1


def test_missing_fixture_26(no_such_fixture):
    pass


def test_pass_27():
    assert {1, 2} <= {1, 2, 3}

