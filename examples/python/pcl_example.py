#!/usr/bin/env python3
"""A ledger client in Python, written from docs/integration.md alone (no Rust involved).

It registers an employer key and a worker with an agency key, signs a one-line contribution
declaration with the employer key, submits everything over gRPC with TLS (pinning the node's
certificate), checks each receipt's event id against its own computation, then reads the
worker's records back with a read token and checks the returned bytes and signature.

    pip install -r examples/python/requirements.txt
    python3 pcl_example.py --node 127.0.0.1:7100 --cert ledger-data/node-1/node.crt \
        --agency-key ledger-data/keys/CN-44.key --jurisdiction CN-44

Prints one JSON document; exits 0 when every check passed, 1 otherwise.
"""

import argparse
import importlib
import json
import os
import secrets
import sys
import tempfile
import time

import blake3
import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

EVENT_DOMAIN = b"portable-contribution-ledger/event/v2\n"
READ_DOMAIN = b"portable-contribution-ledger/read/v2\n"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_protos():
    """Compiles proto/ledger/v1/*.proto into a temporary directory and imports the modules."""
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="pcl-proto-")
    proto_dir = os.path.join(REPO, "proto")
    files = [
        os.path.join("ledger", "v1", f)
        for f in ("events.proto", "node.proto")
    ]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}",
         f"--grpc_python_out={out}"] + files
    )
    if rc != 0:
        sys.exit(f"protoc failed ({rc})")
    sys.path.insert(0, out)
    events = importlib.import_module("ledger.v1.events_pb2")
    node = importlib.import_module("ledger.v1.node_pb2")
    node_grpc = importlib.import_module("ledger.v1.node_pb2_grpc")
    return events, node, node_grpc


def load_key(path):
    """A key file holds the 32-byte ed25519 seed as 64 hex digits."""
    with open(path) as f:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(f.read().strip()))


def public_bytes(key):
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def merkle_root(leaves):
    """RFC 6962 shape with BLAKE3: leaf H(0x00 || data), node H(0x01 || left || right), split
    at the largest power of two smaller than the number of leaves."""
    if len(leaves) == 1:
        return blake3.blake3(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return blake3.blake3(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


def event_id(ledger, body):
    return blake3.blake3(EVENT_DOMAIN + ledger + body).digest()


class Ledger:
    def __init__(self, pb, channel):
        self.events, self.node, node_grpc = pb
        self.stub = node_grpc.LedgerStub(channel)
        status = self.stub.Status(self.node.StatusRequest())
        self.ledger = bytes.fromhex(status.genesis_hash)
        self.node_id = status.node_id

    def body(self, **kind):
        """An EventBody of format version 1, signed now, in canonical (deterministic) bytes."""
        b = self.events.EventBody(version=1)
        b.signed_at.unix_seconds = int(time.time())
        for name, message in kind.items():
            getattr(b, name).CopyFrom(message)
        return b.SerializeToString(deterministic=True)

    def envelope(self, body, keys, lines=()):
        message = EVENT_DOMAIN + self.ledger + body
        return self.events.Envelope(
            body=body,
            lines=list(lines),
            signatures=[
                self.events.Signature(public_key=public_bytes(k), signature=k.sign(message))
                for k in keys
            ],
        )

    def token(self, key, method, subject):
        nonce = secrets.token_bytes(16)
        issued_at = int(time.time())
        message = (
            READ_DOMAIN + self.ledger
            + self.node_id.encode() + b"\x00"
            + method.encode() + b"\x00"
            + subject.encode() + b"\x00"
            + nonce + str(issued_at).encode()
        )
        return self.node.ReadToken(
            public_key=public_bytes(key), issued_at=issued_at, signature=key.sign(message),
            nonce=nonce, method=method, audience=self.node_id,
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--node", required=True, help="host:port of a node's public port")
    ap.add_argument("--cert", required=True, help="the node's certificate (DATA_DIR/node.crt)")
    ap.add_argument("--agency-key", required=True)
    ap.add_argument("--jurisdiction", default="CN-44")
    ap.add_argument("--run", default=secrets.token_hex(4), help="suffix of the ids made")
    args = ap.parse_args()

    pb = load_protos()
    events = pb[0]
    with open(args.cert, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    channel = grpc.secure_channel(args.node, creds)
    led = Ledger(pb, channel)
    agency = load_key(args.agency_key)
    employer = Ed25519PrivateKey.generate()
    employer_id = f"91PY{args.run.upper()}"
    worker = f"W-PY-{args.run}"
    checks = {}

    registration = led.envelope(led.body(key_registered=events.KeyRegistered(
        jurisdiction=args.jurisdiction, role=events.ROLE_EMPLOYER, subject=employer_id,
        public_key=public_bytes(employer))), [agency])
    person = led.envelope(led.body(person_registered=events.PersonRegistered(
        worker=worker, jurisdiction=args.jurisdiction, sex=events.SEX_FEMALE,
        birth_date=19900315, female_category=55, nationality="CN")), [agency])
    line = events.ContributionLine(
        salt=secrets.token_bytes(16), worker=worker, scheme=events.SCHEME_PENSION,
        base=800000, employer_amount=128000, employee_amount=64000,
    ).SerializeToString(deterministic=True)
    declaration = led.envelope(led.body(contributions_declared=events.ContributionsDeclared(
        employer=employer_id, jurisdiction=args.jurisdiction, period=202401, line_count=1,
        lines_root=merkle_root([line]))), [employer], lines=[line])

    sent = [registration, person, declaration]
    reply = led.stub.Submit(led.node.SubmitRequest(events=sent))
    receipts = []
    for env, outcome in zip(sent, reply.outcomes):
        if outcome.WhichOneof("result") != "receipt":
            receipts.append({"refused": outcome.refusal.code, "message": outcome.refusal.message})
            continue
        r = outcome.receipt
        receipts.append({"event_id": r.event_id.hex(), "index": r.index})
        checks.setdefault("receipt ids match", True)
        if r.event_id != event_id(led.ledger, env.body):
            checks["receipt ids match"] = False
    checks["all accepted"] = all("event_id" in r for r in receipts)

    page = led.stub.ListWorkerEvents(led.node.ListWorkerEventsRequest(
        worker=worker, token=led.token(agency, "Ledger/ListWorkerEvents", worker)))
    stored = list(page.events)
    checks["both of the worker's events read back"] = len(stored) == 2
    for s in stored:
        env = s.envelope
        message = EVENT_DOMAIN + led.ledger + env.body
        ok = True
        for sig in env.signatures:
            try:
                Ed25519PublicKey.from_public_bytes(sig.public_key).verify(sig.signature, message)
            except Exception:
                ok = False
        checks.setdefault("signatures verify", True)
        checks["signatures verify"] &= ok and s.event_id == event_id(led.ledger, env.body)
    if len(stored) == 2:
        checks["the declaration comes back byte for byte"] = (
            stored[1].envelope.body == declaration.body and list(stored[1].envelope.lines) == [line]
        )
    # The same token again is refused: a token is good for one read.
    token = led.token(agency, "Ledger/ListWorkerEvents", worker)
    request = led.node.ListWorkerEventsRequest(worker=worker, token=token)
    led.stub.ListWorkerEvents(request)
    try:
        led.stub.ListWorkerEvents(request)
        checks["a replayed token is refused"] = False
    except grpc.RpcError as e:
        checks["a replayed token is refused"] = e.code() == grpc.StatusCode.UNAUTHENTICATED

    ok = all(checks.values())
    print(json.dumps({"ledger": led.ledger.hex(), "node": led.node_id, "worker": worker,
                      "receipts": receipts, "checks": checks, "ok": ok}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
