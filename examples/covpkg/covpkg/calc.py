def add(a, b):
    return a + b


def divide(a, b):
    if b == 0:
        raise ZeroDivisionError("b must not be 0")
    return a / b


def mean(values):
    if not values:
        return None
    return sum(values) / len(values)


def never_called(x):
    y = x * 2
    return y + 1
