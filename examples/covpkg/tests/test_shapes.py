import pytest

from covpkg.shapes import Circle, Rect


@pytest.mark.parametrize("w,h,kind", [(2, 2, "square"), (3, 1, "wide")])
def test_rect(w, h, kind):
    assert Rect(w, h).kind() == kind


def test_rect_area():
    assert Rect(2, 3).area() == 6


def test_circle():
    assert Circle(1).area() > 3


def test_negative_radius():
    with pytest.raises(ValueError):
        Circle(-1)
