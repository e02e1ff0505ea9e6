import math


class Rect:
    def __init__(self, w, h):
        self.w = w
        self.h = h

    def area(self):
        return self.w * self.h

    def kind(self):
        if self.w == self.h:
            return "square"
        elif self.w > self.h:
            return "wide"
        else:
            return "tall"


class Circle:
    def __init__(self, r):
        if r < 0:
            raise ValueError("negative radius")
        self.r = r

    def area(self):
        return math.pi * self.r**2

    def scale(self, k):
        return Circle(self.r * k)
