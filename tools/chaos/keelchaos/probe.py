"""A tiny, bounded network probe for verifying partitions (run inside a namespace).

    python3 probe.py serve PORT SECONDS
        TCP echo on PORT (a line "TOKENS" is answered with the JSON list of UDP
        payloads received so far instead), UDP sink on PORT; exits after SECONDS.
    python3 probe.py check PORT TIMEOUT TOKEN IP [IP...]
        sends three UDP datagrams "TOKEN" to each IP, tries a TCP echo with each
        (connect + one line, TIMEOUT seconds), prints {"IP": true|false, ...} as JSON.

Standard library only; every wait is bounded.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time


def serve(port: int, seconds: float) -> None:
    tokens: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.bind(("0.0.0.0", port))
    udp.settimeout(0.2)

    def sink() -> None:
        while time.monotonic() < deadline:
            try:
                data, _ = udp.recvfrom(512)
            except socket.timeout:
                continue
            with lock:
                tokens.append(data.decode(errors="replace"))

    threading.Thread(target=sink, daemon=True).start()

    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", port))
    tcp.listen(64)
    tcp.settimeout(0.2)
    print("ready", flush=True)

    def answer(conn: socket.socket) -> None:
        conn.settimeout(2)
        try:
            line = conn.makefile("rb").readline(512)
            if line.strip() == b"TOKENS":
                with lock:
                    conn.sendall((json.dumps(tokens) + "\n").encode())
            else:
                conn.sendall(line)
        except OSError:
            pass
        finally:
            conn.close()

    while time.monotonic() < deadline:
        try:
            conn, _ = tcp.accept()
        except socket.timeout:
            continue
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


def tcp_echo(ip: str, port: int, timeout: float, payload: bytes = b"ping\n") -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(payload)
            got = b""
            while not got.endswith(b"\n"):
                chunk = s.recv(512)
                if not chunk:
                    break
                got += chunk
            return got == payload
    except OSError:
        return False


def ask_tokens(ip: str, port: int, timeout: float) -> list[str] | None:
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"TOKENS\n")
            got = b""
            while not got.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            return json.loads(got)
    except (OSError, ValueError):
        return None


def check(port: int, timeout: float, token: str, ips: list[str]) -> dict[str, bool]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(3):
        for ip in ips:
            try:
                udp.sendto(token.encode(), (ip, port))
            except OSError:
                pass
    results: dict[str, bool] = {}
    threads = []
    for ip in ips:
        def run(ip=ip):
            results[ip] = tcp_echo(ip, port, timeout)
        t = threading.Thread(target=run)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(timeout + 1)
    return {ip: results.get(ip, False) for ip in ips}


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "serve":
        serve(int(argv[1]), float(argv[2]))
        return 0
    if len(argv) >= 4 and argv[0] == "check":
        print(json.dumps(check(int(argv[1]), float(argv[2]), argv[3], argv[4:])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
