"""Filters `make book`'s log: drops the tracebacks that jupyter kernels print when they shut down
(`zmq.error.ZMQError: Socket operation on non-socket`) and ipykernel's warning about its local TCP transport,
both harmless, which looked like failures. Every other line passes through unchanged, in order. Reads stdin,
writes stdout."""
import sys

NOISE = ("ZMQError", "Socket operation on non-socket")
LINE_NOISE = ("Kernel is running over TCP without encryption",)


def main():
    block: list[str] = []
    for line in sys.stdin:
        starts = line.startswith(("Traceback (most recent call last)", "Exception ignored", "Exception in thread"))
        if starts or (block and (line.startswith((" ", "\t")) or not line.strip())):
            block.append(line)
            continue
        if block:                                  # the line that ends the traceback: its exception
            block.append(line)
            if not any(n in "".join(block) for n in NOISE):
                sys.stdout.writelines(block)
            block = []
            continue
        if not any(n in line for n in LINE_NOISE):
            sys.stdout.write(line)
            sys.stdout.flush()
    if block and not any(n in "".join(block) for n in NOISE):
        sys.stdout.writelines(block)


if __name__ == "__main__":
    main()
