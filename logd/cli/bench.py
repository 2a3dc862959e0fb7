"""`logd bench`: throughput against baselines run in the same process tree."""

from __future__ import annotations

import argparse


def cmd_bench(args: argparse.Namespace) -> int:
    from logd.bench import main as bench_main

    if args.mix or args.dialect is not None:  # options of --peers
        args.peers = True
    return bench_main(args)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure throughput against baselines in the same run")
    p.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    p.add_argument("--records", type=int, default=200_000, help="records in total (default 200000)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--traces", action="store_true", help="trace records stored per session vs plain records")
    p.add_argument("--client", action="store_true",
                   help="cost of a logger.info() call with LogdHandler vs FileHandler and loguru's file sink")
    p.add_argument("--redact", action="store_true",
                   help="what redaction (on by default) costs per record, in-process and end to end")
    p.add_argument("--ship", nargs="?", const="syslog", choices=("syslog", "nats"), default=None,
                   help="shipping to a local rsyslogd vs rsyslog taking the same frames raw into its file; "
                        "--ship nats adds a 3-replica NATS JetStream stream beside it")
    p.add_argument("--rotate", action="store_true",
                   help="ingestion while rotating every 1 MB with zstd compression vs without rotation")
    p.add_argument("--query", action="store_true",
                   help="logd query --level error over rotated zstd logs vs zstdcat | jq in the same run")
    p.add_argument("--query-mb", type=int, default=1024, metavar="MB",
                   help="uncompressed size of the logs --query reads (default 1024)")
    p.add_argument("--peers", action="store_true",
                   help="the default pipeline beside rsyslog (raw and mmjsonparse), socat and a raw server")
    p.add_argument("--runs", type=int, default=3, metavar="N", help="runs per server for --peers, median (default 3)")
    p.add_argument("--mix", action="store_true",
                   help="--peers: also the mixed agent-log workload (zerolog, zap, loguru, python-json-logger, ...), "
                        "with the share of records on logd's compiled path")
    p.add_argument("--dialect", default=None, metavar="NAME",
                   help="--peers: also a workload of one dialect of --mix (logd, agent, agent+tool, zerolog, zap, "
                        "loguru, python-json-logger, json.dumps)")
    p.add_argument("--otlp", action="store_true",
                   help="spans/s and log records/s over OTLP/HTTP protobuf beside the socket's records/s")
    p.add_argument("--soak", action="store_true",
                   help="sustained paced load with rotation, zstd, shipping to rsyslog and reloads; "
                        "RSS, CPU, rotation stalls and lag each minute, lost/duplicated at the end")
    p.add_argument("--minutes", type=float, default=30, help="--soak: how long (default 30)")
    p.add_argument("--rate", type=int, default=5_000, help="--soak: records/s in total (default 5000)")
    p.add_argument("--backups", type=int, default=10_000,
                   help="--soak: numbered backups present before the run (default 10000)")
    p.add_argument("--canonical", action="store_true",
                   help="--soak: records with a UTC time (and tokens), which take the compiled hot path; by "
                        "default they carry no time (logd stamps them) and take the Python path")
    p.set_defaults(func=cmd_bench)
