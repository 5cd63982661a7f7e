"""The ``opsledger`` command: the server, client commands and offline tools.

Every flag has an ``OPSLEDGER_*`` variable (flag wins). Client commands talk
to ``--target`` (default 127.0.0.1:50051) through ``client.OpsledgerClient``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

import grpc

from opsledger.server.settings import (
    Settings,
    SettingsError,
    check_addr,
    check_root,
    check_zone,
    env,
    env_bool,
    read_token,
)

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
REQUEST_TYPES = ("REQUEST_RECONCILE", "REQUEST_REPORTS", "ACKNOWLEDGE", "REQUEST_LIVE_CYCLE")
STATUSES = ("OPEN", "IN_PROGRESS", "DONE", "FAILED")


def _to_json(message) -> dict:
    """A response as contract JSON: every field, nulls and empty lists included."""
    from opsledger.server.common.contract_json import contract_dict

    return contract_dict(message)


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def _print_report(report: dict) -> None:
    """A report exactly as the server stores it (same bytes), so it verifies."""
    from opsledger.server.common.canonical import pretty

    sys.stdout.buffer.write(pretty(report))
    sys.stdout.flush()


def _client(args):
    from opsledger.client.ledger_client import OpsledgerClient

    return OpsledgerClient(
        args.target,
        token=read_token(Path(args.token_file) if args.token_file else None),
        tls_ca=Path(args.tls_ca) if args.tls_ca else None,
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        timeout=args.timeout,
    )


# -- commands -----------------------------------------------------------------------
def cmd_serve(args) -> int:
    from opsledger.server.app import check_exposure, serve_forever

    settings = Settings(
        token=read_token(Path(args.token_file) if args.token_file else None),
        insecure_no_auth=args.insecure_no_auth,
        protect_reads=args.protect_reads,
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        tls_client_ca=Path(args.tls_client_ca) if args.tls_client_ca else None,
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        max_long_polls=args.max_long_polls,
        http_max_connections=args.http_max_connections,
        grpc_max_connections=args.grpc_max_connections,
        http_request_timeout=args.http_request_timeout,
        root=Path(args.root),
        store=args.store,
        grpc_addr=args.grpc_addr,
        http_addr=None if args.no_http else args.http_addr,
        grpc_target=args.grpc_target,
        fsync=args.fsync,
        ready_file=Path(args.ready_file) if args.ready_file else None,
        grace=args.grace,
        reap_interval=args.reap_interval,
        checkpoint_interval=args.checkpoint_interval,
        accept_log_loss=args.accept_log_loss,
    )
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SettingsError("--tls-cert and --tls-key go together")
    if settings.tls_client_ca and not settings.tls_cert:
        raise SettingsError("--tls-client-ca needs --tls-cert and --tls-key")
    check_addr("--grpc-addr", settings.grpc_addr)
    if settings.http_addr:
        check_addr("--http-addr", settings.http_addr)
    check_exposure(settings)
    check_root(settings.root, init=args.init)  # last: refused settings create nothing
    return asyncio.run(serve_forever(settings))


def cmd_submit(args) -> int:
    from opsledger.server.common import strict_json

    try:
        payload = strict_json.loads(args.payload)
    except ValueError as exc:  # not JSON, or an object with a repeated key
        print(f"error: --payload is not JSON ({exc}): give a JSON object such as '{{\"message_id\": \"m1\"}}'",
              file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(payload, dict):
        print(f"error: --payload is a JSON {type(payload).__name__}, not an object: give a JSON object such as "
              "'{\"message_id\": \"m1\"}'", file=sys.stderr)
        return EXIT_USAGE
    with _client(args) as c:
        _print_json(_to_json(c.submit(args.type, payload, args.trace_id, args.idempotency_key)))
    return EXIT_OK


def cmd_consume(args) -> int:
    with _client(args) as c:
        _print_json(_to_json(c.consume(args.request_id, args.processor, args.message)))
    return EXIT_OK


def cmd_complete(args) -> int:
    with _client(args) as c:
        _print_json(_to_json(c.complete(args.request_id, args.status, args.processor, args.message, args.artifact)))
    return EXIT_OK


def cmd_board(args) -> int:
    with _client(args) as c:
        page = c.board(args.page_size, args.page_token, args.status, args.type)
    if args.json:
        _print_json(_to_json(page))
        return EXIT_OK
    rows = [_to_json(r) for r in page.rows]
    cols = ("request_id", "requested_at", "request_type", "current_status", "last_processed_at", "last_message")
    table = [[str(r.get(c, "") or "") for c in cols] for r in rows]
    widths = [min(60, max([len(c)] + [len(t[i]) for t in table])) for i, c in enumerate(cols)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths)))
    for t in table:
        print("  ".join(v[:w].ljust(w) for v, w in zip(t, widths)))
    more = f"; next page: --page-token {page.next_page_token}" if page.next_page_token else ""
    print(f"-- {page.row_count} of {page.total_count} rows" + more)
    return EXIT_OK


def event_line(event) -> str:
    """One readable line per ledger event: when, what, which ticket, where to resume."""
    from google.protobuf import json_format

    from opsledger.v1 import tickets_pb2 as pb

    kind = pb.TicketEvent.Kind.Value.Name(event.kind)
    status = pb.TicketStatus.Value.Name(event.status)
    rtype = pb.RequestType.Value.Name(event.request_type)
    if event.WhichOneof("record") == "result":
        r = event.result
        when, what = r.processed_at, f"by {r.processor_id}" + (f": {r.message}" if r.message else "")
    else:
        when, what = event.request.requested_at, json.dumps(json_format.MessageToDict(event.request.payload),
                                                          ensure_ascii=False, separators=(",", ":"))
    return f"{when}  {kind:<10}  {event.request_id}  {rtype:<18}  {status:<11}  {what}  @{event.revision}"


def cmd_watch(args) -> int:
    last = args.after
    try:
        with _client(args) as c:
            for event in c.watch(after=args.after, from_beginning=args.from_beginning,
                                 statuses=args.status, types=args.type):
                last = c.last_revision
                if args.json:
                    print(json.dumps(_to_json(event), ensure_ascii=False, separators=(",", ":")), flush=True)
                else:
                    print(event_line(event), flush=True)
    except KeyboardInterrupt:
        if last:
            print(f"-- stopped; resume with: opsledger watch --after {last}", file=sys.stderr)
        return EXIT_OK
    return EXIT_OK


def cmd_ticket(args) -> int:
    with _client(args) as c:
        _print_json(_to_json(c.ticket(args.request_id)))
    return EXIT_OK


def cmd_reap(args) -> int:
    if args.local:
        if not _is_pg(args.store):
            check_root(Path(args.root))
        # Straight on the root's files, beside any running server (same lock).
        from opsledger.server.artifacts.select import artifacts_for
        from opsledger.server.common.clock import Clock
        from opsledger.server.ledger import reaper
        from opsledger.server.ledger.backends import make_backend

        store = make_backend(args.store, Path(args.root)).open()
        try:
            body, snapshot = reaper.run(store, artifacts_for(args.store, Path(args.root)), Clock(), args.threshold,
                                        args.max_clean, args.dry_run)
        finally:
            store.close()
        _print_json({"report": body, "snapshot_ref": snapshot})
        return EXIT_OK
    with _client(args) as c:
        _print_json(_to_json(c.reap(args.threshold, args.max_clean, args.dry_run)))
    return EXIT_OK


def cmd_worker(args) -> int:
    from opsledger.client.worker import Worker
    from opsledger.server.tracing import from_environment

    tracing = from_environment()  # the same OTEL_* settings as the server: off unless an endpoint is set
    try:
        with _client(args) as c:
            worker = Worker(c, args.processor, tuple(args.types), args.wait, tracer_provider=tracing.provider)
            worker.install_signal_handlers()
            handled = worker.run(once=args.once)
    finally:
        tracing.shutdown()
    print(f"worker {args.processor}: handled {handled} ticket(s)", flush=True)
    return EXIT_OK


def _is_pg(store: str | None) -> bool:
    from opsledger.server.ledger.backends import is_postgres

    return is_postgres(store)


def _pg_url(args) -> str:
    url = (args.store or "").strip()
    if not _is_pg(url):
        raise SystemExit("opsledger db: --store / OPSLEDGER_STORE must be a postgresql:// URL")
    return url


def cmd_db_migrate(args) -> int:
    from opsledger.server.ledger.postgres import migrate

    try:
        done = migrate.migrate(_pg_url(args))
    except migrate.SchemaError as exc:
        print(f"opsledger db migrate: {exc}", file=sys.stderr)
        return 1
    if not done:
        print("schema is current; nothing to apply")
    return 0


def cmd_db_status(args) -> int:
    from opsledger.server.ledger.postgres import migrate

    applied, pending, problems = migrate.status(_pg_url(args))
    _print_json({"applied": applied, "pending": pending, "problems": problems})
    return 1 if problems or pending else 0


def cmd_export(args) -> int:
    from opsledger.server.ledger.postgres.transfer import TransferError, export_to

    try:
        counts = export_to(_pg_url(args), Path(args.to))
    except TransferError as exc:
        print(f"opsledger export: {exc}", file=sys.stderr)
        return 1
    _print_json({"exported_to": str(Path(args.to).resolve()), **counts})
    return 0


def cmd_import(args) -> int:
    from opsledger.server.ledger.postgres.transfer import TransferError, import_from

    try:
        counts = import_from(_pg_url(args), Path(getattr(args, "from")))
    except TransferError as exc:
        print(f"opsledger import: {exc}", file=sys.stderr)
        return 1
    _print_json({"imported_from": str(Path(getattr(args, "from")).resolve()), **counts})
    return 0


def cmd_fsck(args) -> int:
    from opsledger.server.ledger.jsonl.fsck import fsck  # fsck checks the JSONL files themselves

    check_root(Path(args.root))
    findings = fsck(Path(args.root), with_status=True)
    for f in findings:
        print(f)
    errors = [f for f in findings if f.severity == "error"]
    print(f"fsck: {len(errors)} error(s), {len(findings) - len(errors)} note(s) in {Path(args.root).resolve()}")
    return EXIT_FAIL if errors else EXIT_OK


def cmd_checkpoint(args) -> int:
    from opsledger.server.ledger.jsonl.tools import checkpoint_now  # the JSONL ledger's own file

    root = Path(args.root)
    if not (root / "state" / "tickets").is_dir():
        print(f"error: {root}: no ledger here (state/tickets/ is missing)", file=sys.stderr)
        return EXIT_FAIL
    print(f"checkpoint written: {checkpoint_now(root)}")
    return EXIT_OK


def cmd_cycle_run(args) -> int:
    with _client(args) as c:
        receipt = c.run_cycle().receipt
    _print_report(_to_json(receipt))
    from opsledger.v1 import cycle_pb2

    return EXIT_OK if receipt.result == cycle_pb2.CycleResult.OK else EXIT_FAIL


def cmd_cycle_latest(args) -> int:
    with _client(args) as c:
        latest = c.latest_cycle()
    if args.snapshots:
        for ref in latest.snapshots:
            print(ref)
        return EXIT_OK
    if not latest.rows:
        print("no cycle has run yet", file=sys.stderr)
        return EXIT_FAIL
    _print_report(_to_json(latest.rows[0]))
    return EXIT_OK


def cmd_bundle_publish(args) -> int:
    from opsledger.server.artifacts.layout import latest_ref
    from opsledger.server.artifacts.select import artifacts_for
    from opsledger.server.cycle.publish import PublishRefused, publish

    if not _is_pg(args.store):  # bundles in PostgreSQL need no data root
        check_root(Path(args.root), init=args.init)
    artifacts = artifacts_for(args.store, Path(args.root))
    if args.if_missing and artifacts.read_latest("bundle") is not None:
        print(f"bundle already published at {latest_ref('bundle')}; left as is")
        return EXIT_OK
    try:
        latest, snapshot, bundle = publish(artifacts, Path(args.strategy), Path(args.key_file) if args.key_file else None)
    except (PublishRefused, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(f"published bundle {bundle['bundle_id']} -> {latest} and {snapshot}")
    return EXIT_OK


def cmd_verify_receipt(args) -> int:
    from opsledger.server.artifacts.files import FileArtifacts
    from opsledger.server.cycle.verify import root_of, verify_receipt

    path = Path(args.path)
    root = Path(args.root) if args.root else root_of(path)
    problems = verify_receipt(FileArtifacts(root or Path(".")), path)
    if problems and root is None and any(p.startswith("ref ") for p in problems):
        problems.append(f"refs were looked up under the current folder ({Path('.').resolve()}), since {path} "
                        "is not inside a data root's reports/live/cycle/: pass --root DATA_ROOT")
    for p in problems:
        print(f"MISMATCH {p}")
    print(f"verify: {args.path}: " + ("OK" if not problems else f"{len(problems)} problem(s)"))
    return EXIT_FAIL if problems else EXIT_OK


# -- parser ---------------------------------------------------------------------------
def _client_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default=env("TARGET", "127.0.0.1:50051"), help="gRPC address (OPSLEDGER_TARGET)")
    p.add_argument("--token-file", default=env("TOKEN_FILE"), help="file holding the bearer token (or OPSLEDGER_TOKEN)")
    p.add_argument("--tls-ca", default=env("TLS_CA"), help="CA bundle: use TLS to the server (OPSLEDGER_TLS_CA)")
    p.add_argument("--tls-cert", default=env("CLIENT_TLS_CERT"), help="client certificate for mutual TLS")
    p.add_argument("--tls-key", default=env("CLIENT_TLS_KEY"), help="client key for mutual TLS")
    p.add_argument("--timeout", type=float, default=float(env("TIMEOUT", "10")), help="deadline per call, seconds")


def _root_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=env("ROOT", "."), help="data root (OPSLEDGER_ROOT, default .)")


def _store_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=env("STORE", "jsonl"),
                   help="ledger backend: jsonl (the logs under --root, default) (OPSLEDGER_STORE)")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the flag and where to look (subcommands inherit it)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="opsledger", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    d = Settings()  # the one home of the server's defaults (each from its OPSLEDGER_* variable)
    p = sub.add_parser("serve", help="run the gRPC server (and the HTTP gateway)")
    _root_flag(p)
    _store_flag(p)
    p.add_argument("--grpc-addr", default=d.grpc_addr, help="gRPC listen address")
    p.add_argument("--http-addr", default=d.http_addr, help="HTTP gateway listen address")
    p.add_argument("--no-http", action="store_true", default=env_bool("NO_HTTP"), help="do not start the HTTP gateway")
    p.add_argument("--grpc-target", default=d.grpc_target,
                   help="gateway calls this gRPC server instead of its own (remote gateway)")
    p.add_argument("--fsync", choices=("always", "never"), default=d.fsync,
                   help="always: an OK reply means the line is on disk (default)")
    p.add_argument("--grace", type=float, default=d.grace, help="seconds to drain calls on SIGTERM")
    p.add_argument("--token-file", default=env("TOKEN_FILE"),
                   help="bearer token for mutating calls (or OPSLEDGER_TOKEN)")
    p.add_argument("--insecure-no-auth", action="store_true", default=d.insecure_no_auth,
                   help="allow a non-loopback bind without a token (warned at every start)")
    p.add_argument("--protect-reads", action="store_true", default=d.protect_reads,
                   help="the token also guards reads, /metrics and reflection (health stays open)")
    p.add_argument("--tls-cert", default=d.tls_cert, help="server certificate (PEM): TLS for gRPC and HTTP")
    p.add_argument("--tls-key", default=d.tls_key, help="server private key (PEM)")
    p.add_argument("--tls-client-ca", default=d.tls_client_ca,
                   help="CA of client certificates: require mutual TLS on gRPC")
    p.add_argument("--max-concurrent-rpcs", type=int, default=d.max_concurrent_rpcs,
                   help="calls (other than waiting long-polls and health) beyond this many at once "
                        "get RESOURCE_EXHAUSTED")
    p.add_argument("--max-long-polls", type=int, default=d.max_long_polls,
                   help="ConsumeNext calls waiting (wait_seconds > 0) and WatchTickets streams open at once; "
                        "more get RESOURCE_EXHAUSTED")
    p.add_argument("--http-max-connections", type=int, default=d.http_max_connections,
                   help="HTTP connections at once (lowered to fit the descriptor limit)")
    p.add_argument("--grpc-max-connections", type=int, default=d.grpc_max_connections,
                   help="gRPC connections at once (lowered to fit the descriptor limit)")
    p.add_argument("--http-request-timeout", type=float, default=d.http_request_timeout,
                   help="seconds to send a whole HTTP request or finish a gRPC handshake; slower connections are closed")
    p.add_argument("--reap-interval", type=float, default=d.reap_interval,
                   help="run the reaper every N seconds (0: off)")
    p.add_argument("--checkpoint-interval", type=float, default=d.checkpoint_interval,
                   help="write the index checkpoint every N seconds when the logs grew (0: only at stop)")
    p.add_argument("--accept-log-loss", action="store_true", default=d.accept_log_loss,
                   help="start although a log holds less than the last index checkpoint covered")
    p.add_argument("--ready-file", default=env("READY_FILE"), help="write bound ports here as JSON once serving")
    p.add_argument("--init", action="store_true", default=env_bool("INIT"),
                   help="create --root when it does not exist (otherwise a missing root is an error)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("submit", help="submit a ticket")
    _client_flags(p)
    p.add_argument("--type", required=True, choices=REQUEST_TYPES, metavar="TYPE", help=" | ".join(REQUEST_TYPES))
    p.add_argument("--payload", required=True, help="payload as a JSON object")
    p.add_argument("--trace-id")
    p.add_argument("--idempotency-key")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("consume", help="OPEN -> IN_PROGRESS")
    _client_flags(p)
    p.add_argument("request_id")
    p.add_argument("--processor", default=env("PROCESSOR", ""))
    p.add_argument("--message")
    p.set_defaults(func=cmd_consume)

    p = sub.add_parser("complete", help="IN_PROGRESS -> DONE | FAILED")
    _client_flags(p)
    p.add_argument("request_id")
    p.add_argument("--status", required=True, choices=("DONE", "FAILED"))
    p.add_argument("--processor", default=env("PROCESSOR", ""))
    p.add_argument("--message", default="")
    p.add_argument("--artifact", action="append", default=[], help="raw path; repeat for several")
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser("board", help="the status board, newest first")
    _client_flags(p)
    p.add_argument("--status", action="append", default=[], choices=STATUSES, metavar="STATUS",
                   help="filter (" + " | ".join(STATUSES) + "); repeat for several")
    p.add_argument("--type", action="append", default=[], choices=REQUEST_TYPES, metavar="TYPE",
                   help="filter; repeat for several")
    p.add_argument("--page-size", type=int, default=50)
    p.add_argument("--page-token", default="")
    p.add_argument("--json", action="store_true", help="print the response as JSON")
    p.set_defaults(func=cmd_board)

    from opsledger.v1 import tickets_pb2 as pb

    p = sub.add_parser("watch", help="print ledger events as they are committed (resumable)")
    _client_flags(p)
    p.add_argument("--after", default="", help="resume after this revision (the @... of a printed event)")
    p.add_argument("--from-beginning", action="store_true", help="every event since the ledger began")
    p.add_argument("--status", action="append", default=[], help="only events to this status; repeat for several",
                   choices=[n for n in pb.TicketStatus.Value.keys() if n != "VALUE_UNSPECIFIED"])  # noqa: SIM118 - an enum wrapper
    p.add_argument("--type", action="append", default=[], help="only tickets of this type; repeat for several",
                   choices=[n for n in pb.RequestType.Value.keys() if n != "VALUE_UNSPECIFIED"])  # noqa: SIM118 - an enum wrapper
    p.add_argument("--json", action="store_true", help="one JSON object per line (contract JSON of TicketEvent)")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("ticket", help="one ticket with every result")
    _client_flags(p)
    p.add_argument("request_id")
    p.set_defaults(func=cmd_ticket)

    p = sub.add_parser("cycle", help="live cycle: run | latest")
    cyc = p.add_subparsers(dest="cycle_command", required=True)
    q = cyc.add_parser("run", help="run one live cycle (confirms for you) and print its receipt")
    _client_flags(q)
    q.set_defaults(func=cmd_cycle_run)
    q = cyc.add_parser("latest", help="print the latest receipt as stored (exit 1 before any cycle)")
    _client_flags(q)
    q.add_argument("--snapshots", action="store_true", help="print the 10 newest snapshot refs instead")
    q.set_defaults(func=cmd_cycle_latest)

    p = sub.add_parser("bundle", help="strategy bundles: publish")
    bun = p.add_subparsers(dest="bundle_command", required=True)
    q = bun.add_parser("publish", help="wrap STRATEGY.json into STRATEGY_BUNDLE_V1 (latest + snapshot)")
    _root_flag(q)
    q.add_argument("strategy", help="strategy JSON (name, version, universe, limits, ...)")
    q.add_argument("--key-file", default=env("BUNDLE_KEY_FILE"), help="HMAC key: sign the bundle")
    q.add_argument("--if-missing", action="store_true", help="do nothing when a bundle is already published")
    q.add_argument("--init", action="store_true", help="create --root when it does not exist")
    _store_flag(q)
    q.set_defaults(func=cmd_bundle_publish)

    p = sub.add_parser("verify", help="verify a receipt: hash and every evidence ref")
    ver = p.add_subparsers(dest="verify_command", required=True)
    q = ver.add_parser("receipt", help="recompute the integrity hash; check each ref exists under the root "
                                       "and the seed's key order")
    q.add_argument("--root", default=env("ROOT"),
                   help="data root (OPSLEDGER_ROOT; default: taken from PATH when it lies in a root's "
                        "receipt folders, else the current folder)")
    q.add_argument("path")
    q.set_defaults(func=cmd_verify_receipt)

    p = sub.add_parser("reap", help="fail tickets stuck IN_PROGRESS past a threshold")
    _client_flags(p)
    _root_flag(p)
    p.add_argument("--threshold", type=int, default=int(env("REAP_THRESHOLD", "0")), help="seconds (0: 86400)")
    p.add_argument("--max-clean", type=int, default=int(env("REAP_MAX_CLEAN", "0")), help="per run (0: 50)")
    p.add_argument("--dry-run", action="store_true", help="report only; write nothing")
    p.add_argument("--local", action="store_true", help="work on --root directly instead of calling --target")
    _store_flag(p)
    p.set_defaults(func=cmd_reap)

    p = sub.add_parser("worker", help="claim and handle tickets: ConsumeNext -> handle -> CompleteTicket")
    _client_flags(p)
    p.add_argument("--processor", required=True, default=env("PROCESSOR"), help="this worker's processor_id")
    p.add_argument("--types", nargs="*", default=[], choices=REQUEST_TYPES, metavar="TYPE",
                   help="only these request types")
    p.add_argument("--wait", type=float, default=float(env("WORKER_WAIT", "20")), help="long-poll seconds (max 60)")
    p.add_argument("--once", action="store_true", help="handle one ticket (or none after the wait) and exit")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("checkpoint", help="write the JSONL ledger's index checkpoint now (server running or not)")
    _root_flag(p)
    p.set_defaults(func=cmd_checkpoint)

    p = sub.add_parser("db", help="PostgreSQL schema: migrate | status")
    dbs = p.add_subparsers(dest="db_command", required=True)
    for name, func, text in (("migrate", cmd_db_migrate, "apply every pending schema migration"),
                             ("status", cmd_db_status, "applied and pending migrations; exit 1 unless current")):
        q = dbs.add_parser(name, help=text)
        q.add_argument("--store", default=env("STORE"), help="postgresql:// URL (OPSLEDGER_STORE)")
        q.set_defaults(func=func)

    p = sub.add_parser("export", help="write a PostgreSQL ledger out as the contract's files (one snapshot)")
    p.add_argument("--to", required=True, help="an empty folder: becomes a data root (state/tickets/*.jsonl, reports)")
    p.add_argument("--store", default=env("STORE"), help="postgresql:// URL (OPSLEDGER_STORE)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="move a JSONL ledger (checked by replay) into an empty PostgreSQL database")
    p.add_argument("--from", required=True, help="the data root whose logs and artifacts to import")
    p.add_argument("--store", default=env("STORE"), help="postgresql:// URL (OPSLEDGER_STORE)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("fsck", help="check both logs and the index checkpoint; report every anomaly; change nothing")
    _root_flag(p)
    p.set_defaults(func=cmd_fsck)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from opsledger.server.observability import configure_logging

    configure_logging(args.log_level)
    try:
        check_zone()
        return args.func(args)
    except grpc.RpcError as exc:
        _print_rpc_error(exc)
        return EXIT_FAIL
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - an operator gets one line, not a traceback
        print(f"error: {operator_message(exc)}", file=sys.stderr)
        logging.getLogger("opsledger.cli").debug("stack trace", exc_info=True)
        return EXIT_FAIL


def operator_message(exc: BaseException) -> str:
    """One line: the cause, then what to do."""
    from opsledger.server.errors import StartupRefused

    if isinstance(exc, StartupRefused):
        return f"{exc}: {exc.fix}"
    if isinstance(exc, IsADirectoryError):
        return (f"{exc.filename}: is a folder where a file belongs: move the folder away, or point --root "
                "at the right data root")
    if isinstance(exc, NotADirectoryError):
        return f"{exc.filename}: a file stands where a folder belongs: move it away"
    if isinstance(exc, PermissionError):
        return f"{exc.filename}: permission denied: run as the data root's owner or fix its permissions"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}: check the path, its permissions and free space"
    return (f"{type(exc).__name__}: {exc} (unexpected; rerun with --log-level DEBUG for the stack trace and "
            "report it)")


def _print_rpc_error(exc: grpc.RpcError) -> None:
    print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
    from opsledger.server.rpc_status import decode_details

    for item in decode_details(exc):
        kind = item.pop("@type").rsplit(".", 1)[-1]
        print(f"  {kind}: {json.dumps(item, ensure_ascii=False)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
