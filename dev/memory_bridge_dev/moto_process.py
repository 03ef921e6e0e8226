"""moto's server in a process of its own (with the SQS speed-up), for benchmarks that measure the
bridge's process alone: `python -m memory_bridge_dev.moto_process --port 5000`."""

from __future__ import annotations

import argparse
import logging
import signal
import threading


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    from memory_bridge_dev import moto_speedups

    moto_speedups.apply()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    print("ready", flush=True)
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
