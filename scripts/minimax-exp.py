#!/usr/bin/env python3
"""Coefficients of the softmax pass-1 exponential (Kernels/Cpu/SoftmaxCpu.cs, FastExp).

e^r ~ 1 + r + c2 r^2 + ... + c6 r^6 on |r| <= ln2/2 + 0.001 (the reduced argument plus the difference's remainder),
c2..c6 minimising the largest relative error (Remez exchange, 50-digit arithmetic). Prints the coefficients rounded
to float and the relative error with those rounded coefficients. Needs mpmath (pip install mpmath).
"""
import struct

import mpmath as mp

mp.mp.dps = 50
HI = mp.log(2) / 2 + mp.mpf("1e-3")
LO = -HI
POWERS = list(range(2, 7))


def to_float(x):
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def relative_error(c, r):
    p = 1 + r + sum(ck * r**k for ck, k in zip(c, POWERS))
    return (p - mp.e**r) / mp.e**r


def remez(iterations=30, grid_points=4000):
    n = len(POWERS)
    # Start from the Chebyshev extrema, kept off r = 0, where the error vanishes whatever the coefficients.
    points = [(LO + HI) / 2 + (HI - LO) / 2 * mp.cos(mp.pi * i / n) for i in range(n + 1)]
    points = [p if abs(p) > mp.mpf("1e-6") else mp.mpf("1e-3") for p in points]
    grid = [LO + (HI - LO) * i / grid_points for i in range(grid_points + 1)]
    for _ in range(iterations):
        # Solve p(r_i) - e^r_i = (-1)^i E e^r_i for c2..c6 and the levelled error E.
        a = mp.matrix(n + 1, n + 1)
        b = mp.matrix(n + 1, 1)
        for i, r in enumerate(points):
            for j, k in enumerate(POWERS):
                a[i, j] = r**k
            a[i, n] = -((-1) ** i) * mp.e**r
            b[i] = mp.e**r - 1 - r
        solution = mp.lu_solve(a, b)
        c = [solution[j] for j in range(n)]
        levelled = abs(solution[n])
        values = [relative_error(c, r) for r in grid]
        largest = max(abs(v) for v in values)
        if largest - levelled < levelled * mp.mpf("1e-6"):
            return c
        # The next reference: local extrema of |error|, alternating in sign, the largest kept.
        extrema = [grid[i] for i in range(len(grid))
                   if (i == 0 or abs(values[i]) >= abs(values[i - 1]))
                   and (i == len(grid) - 1 or abs(values[i]) >= abs(values[i + 1]))
                   and abs(values[i]) > levelled / 100]
        alternating = []
        for r in extrema:
            v = relative_error(c, r)
            if alternating and mp.sign(relative_error(c, alternating[-1])) == mp.sign(v):
                if abs(v) > abs(relative_error(c, alternating[-1])):
                    alternating[-1] = r
            else:
                alternating.append(r)
        while len(alternating) > n + 1:
            if abs(relative_error(c, alternating[0])) < abs(relative_error(c, alternating[-1])):
                alternating.pop(0)
            else:
                alternating.pop()
        if len(alternating) == n + 1:
            points = alternating
    return c


if __name__ == "__main__":
    coefficients = remez()
    rounded = [mp.mpf(to_float(c)) for c in coefficients]
    for k, c in zip(POWERS, coefficients):
        print(f"c{k} = {to_float(c)!r}f   ({mp.nstr(c, 20)})")
    worst = max(abs(relative_error(rounded, LO + (HI - LO) * i / 20000)) for i in range(20001))
    print(f"largest relative error with float coefficients: {mp.nstr(worst, 5)} ({mp.nstr(worst / mp.mpf(2) ** -23, 3)} ulp of 1)")
