"""cpu_spin: the CPU-bound thread of the convoy experiments.

main(stop) counts loop iterations in pure Python until `stop.set` becomes
true and returns the count. The engine creates one StopFlag per CPU thread
and sets it (holding the GIL) at StopCpuThreads. The flag is read on every
iteration: an attribute load, so the loop stays pure bytecode and CPython's
eval breaker is checked at its backward jump, as in Beazley's `count()`.
"""


class StopFlag:
    __slots__ = ("set",)

    def __init__(self):
        self.set = False


def main(stop):
    iterations = 0
    while not stop.set:
        iterations += 1
    return iterations
