"""keelchaos: the parts of tools/chaos, Keel's Jepsen-style fault-injection harness
(DESIGN.md, testing layer 5). See tools/chaos/README.md.

    partitions  network partitions as values (cut directed links)       pure
    netns       a namespace per node, veths to a bridge, iptables cuts  root
    probe       the tiny TCP/UDP echo that verifies partitions          stdlib
    durability  what was fsynced; cutting files back to it              files
    fsynctrack.c  the LD_PRELOAD shim that records fsyncs
    nodes       node processes (start, stop, kill, pause) and the cluster launch
    workload    idempotent producers, consumer-group members, final read
    history     the JSON-lines history
    nemesis     the seeded fault schedule and its executor
    checker     anomalies and unavailability windows                    pure
    plot        plot.svg                                                pure

Pure parts have no I/O and are unit-tested on synthetic inputs (tests/).
"""
