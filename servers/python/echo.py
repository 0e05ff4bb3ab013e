"""echo: the default request handler of the cpython engine.

Does `work_units` iterations of a Python loop (the per-request interpreter
work, as in the toy VM's echo.gasm) and returns the request bytes unchanged.
"""


def handle(request, work_units):
    for _ in range(work_units):
        pass
    return request
