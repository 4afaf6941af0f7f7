"""wsgiws's benchmark suite: wsgiws beside its peers, measured in one run.

Run it from the repository root with ``./run-benchmarks`` (a venv with the
``bench`` extra, then ``python -m bench``); ``python -m bench --help`` lists the
options. It is not part of the test run, and nothing in it asserts a time: the
tests under ``tests/bench`` check only that it measures what it says.

* :mod:`bench._targets` starts the servers under test (wsgiws under each
  supported server, flask-sock on the same servers, the ``websockets``
  library's asyncio and sync servers, and a hand-framed floor), each an echo at
  ``/echo``, pinned to one CPU.
* :mod:`bench._client` is the load client: plain sockets, frames masked once
  and reused, so that it costs less than any server it drives.
* :mod:`bench.__main__` runs the workloads W1-W6 against every target, keeps
  the medians, and reports every figure as a ratio to the ``websockets``
  asyncio server measured in the same run (:mod:`bench._report`).
"""
