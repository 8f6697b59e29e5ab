import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def data_tree(top):
    """(install dir, files) pairs so that static/ and templates/ ship in the wheel."""
    entries = []
    for folder, _dirs, files in os.walk(os.path.join(HERE, top)):
        rel = os.path.relpath(folder, HERE)
        if files:
            entries.append((os.path.join("share", "racedash", rel), [os.path.join(rel, f) for f in files]))
    return entries


def read_version():
    with open(os.path.join(HERE, "racedash", "__init__.py")) as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split("=")[1].strip().strip('"')
    raise RuntimeError("no version")


setup(
    name="racedash",
    version=read_version(),
    description="Live race telemetry server with record and replay",
    packages=find_packages(include=["racedash", "racedash.*"]),
    python_requires=">=3.11",
    install_requires=[
        "tornado==6.6.1",
        "python-socketio==5.18.1",
        "python-engineio==4.15.1",
        "aiofiles==25.1.0",
        "orjson==3.13.0",
        # Compiles the payload schemas to plain Python once: validation on the
        # telemetry hot path costs microseconds instead of jsonschema's ~100 µs.
        "fastjsonschema==2.22.3",
        # The simulator and `racedash replay` are Socket.IO clients like the monitor.
        "aiohttp==3.14.5",
        # GET /metrics: the standard Prometheus exposition format (and a parser for
        # the tests) from the reference library, rather than hand-written.
        "prometheus-client==0.21.1",
        # Several processes behind one URL (--redis-url): Redis is the engine they share
        # (python-socketio's AsyncRedisManager needs redis-py too), never a home-made bus.
        "redis==7.4.1",
        # Every process reads every room's frames off one subscription and drops those it has
        # no viewer of: hiredis parses them in C (a few µs each instead of redis-py's tens).
        "hiredis==3.5.0",
    ],
    extras_require={
        # benchmarks/ only: `loadgen --profile` / `suite --profile` record the server with py-spy.
        "bench": ["py-spy==0.4.1"],
        "test": [
            "pytest==9.2.0",
            "pytest-tornasync==0.6.0.post2",
            "pytest-cov==7.1.0",
            "pytest-timeout==2.4.0",
            "hypothesis==6.170.17",
            "playwright==1.65.2",
            # The real monitor uses the sync python-socketio client (requests + websocket-client).
            "requests==2.32.5",
            "websocket-client==1.9.2",
        ],
    },
    data_files=data_tree("static") + data_tree("templates"),
    entry_points={"console_scripts": ["racedash=racedash.cli:main"]},
)
