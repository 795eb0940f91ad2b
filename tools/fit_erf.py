"""Fits the rational approximation kernels/eltwise.cc uses for Erf:
erf(x) ~ x * P(x^2) / Q(x^2) on [-3.92, 3.92] (P degree 6, Q degree 4,
Q(0) = 1), by iteratively reweighted linear least squares towards the
smallest maximum absolute error, then checks it in float32 Horner against
math.erf. Prints the coefficients and the errors (max abs 4.3e-7, max
relative 6.3e-7 for |x| < 1 when last run).

  /usr/bin/python3 tools/fit_erf.py
"""
import numpy as np
from math import erf
# erf(x) ~ x * P(z) / Q(z), z = x^2, on [0, 4]; P degree 6, Q degree 4 with Q(0) = 1.
xs = np.concatenate([np.linspace(0, 4, 20001)[1:], np.geomspace(1e-6, 0.1, 2000)])
f = np.array([erf(x) for x in xs]) / xs
z = xs * xs
npn, nq = 7, 4   # P coeffs p0..p6, Q coeffs q1..q4
def solve(weights):
    A = np.hstack([np.vstack([z**i for i in range(npn)]).T,
                   -(f[:, None] * np.vstack([z**i for i in range(1, nq + 1)]).T)])
    W = weights[:, None]
    c, *_ = np.linalg.lstsq(A * W, f * weights, rcond=None)
    return c[:npn], np.concatenate([[1.0], c[npn:]])
# iteratively reweighted to approach minimax on the *absolute* error of erf
w = np.ones_like(xs)
for it in range(30):
    p, q = solve(w)
    approx = xs * np.polyval(p[::-1], z) / np.polyval(q[::-1], z)
    err = np.abs(approx - xs * f)
    w = w * (1 + 50 * err / err.max())
    w /= w.mean()
print("p =", repr(p.tolist()))
print("q =", repr(q.tolist()))
# evaluate in float32 Horner with fma-like float32 ops
def eval32(x):
    x = np.float32(np.clip(x, -4, 4)); zz = x * x
    P = np.float32(p[-1])
    for c in p[-2::-1]: P = P * zz + np.float32(c)
    Q = np.float32(q[-1])
    for c in q[-2::-1]: Q = Q * zz + np.float32(c)
    return np.float32(x * P / Q)
xt = np.linspace(-6, 6, 200001).astype(np.float32)
ref = np.array([erf(float(v)) for v in xt])
got = np.array([eval32(v) for v in xt], dtype=np.float64)
print("max abs", np.max(np.abs(got - ref)))
small = np.abs(xt) < 1
rel = np.abs(got - ref)[small] / np.maximum(np.abs(ref[small]), 1e-30)
print("max rel |x|<1", np.max(rel[np.abs(ref[small]) > 0]))
