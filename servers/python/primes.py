"""primes: the CPU-bound request of the PyPy-STM benchmark.

The request is an ASCII decimal N; the reply is the ASCII decimal count of
primes <= N, found by trial division (the same algorithm as the toy VM's
primes.gasm and the native engine's CountPrimesUpTo).
"""


def handle(request, work_units):
    n = int(request)
    count = 0
    for k in range(2, n + 1):
        d = 2
        while d * d <= k:
            if k % d == 0:
                break
            d += 1
        else:
            count += 1
    return str(count).encode("ascii")
