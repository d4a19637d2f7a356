"""A writer process for the crash tests: `python objstore_crash_writer.py MODE DATA_DIR CONFIG_JSON`.

MODE `big`: stream one 64 MiB object in 1 MiB pieces into photos/big (the test kills it mid-write).
MODE `many`: commit objects photos/obj/NNNNN one after another; print each key, flushed, only once
`commit` returned, so every printed key is an acknowledged write.
"""

from __future__ import annotations

import json
import os
import sys

from objstore import Store, StoreConfig


def payload(i: int) -> bytes:
    """Deterministic content; seeds repeat so later objects share chunks with earlier ones."""
    import random

    sizes = (0, 10, 4096, 5000, 70_000, 200_000, 450_000)
    return random.Random(i % 23).randbytes(sizes[i % len(sizes)])


def main() -> None:
    mode, data_dir, config_json = sys.argv[1:4]
    store = Store(data_dir, StoreConfig(**json.loads(config_json)))
    if mode == "big":
        with store.open_writer("photos", "big") as w:
            for _ in range(64):
                w.write(os.urandom(1024 * 1024))
            w.commit()
        print("committed", flush=True)
    elif mode == "many":
        for i in range(100_000):
            key = f"obj/{i:05d}"
            store.put_object("photos", key, payload(i))
            print(key, flush=True)


if __name__ == "__main__":
    main()
