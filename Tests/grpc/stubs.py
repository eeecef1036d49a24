"""Python stubs generated from the committed proto/ files with grpcio-tools, into a scratch
folder, so the tests call the services through the contracts as published."""
import importlib
import os
import sys
import tempfile

from grpc_tools import protoc

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTO = os.path.join(ROOT, "proto")


def generate():
    out = tempfile.mkdtemp(prefix="musit-proto-py-")
    files = []
    for folder, _, names in os.walk(PROTO):
        files += [os.path.relpath(os.path.join(folder, n), PROTO) for n in names if n.endswith(".proto")]
    # grpc_tools ships the well-known types; the project's files import none today.
    args = ["protoc", "-I" + PROTO, "--python_out=" + out, "--grpc_python_out=" + out] + sorted(files)
    if protoc.main(args) != 0:
        raise RuntimeError("grpc_tools.protoc failed on proto/")
    sys.path.insert(0, out)
    stats = importlib.import_module("musit.stats.v1.stats_pb2")
    stats_grpc = importlib.import_module("musit.stats.v1.stats_pb2_grpc")
    health = importlib.import_module("grpc.health.v1.health_pb2")
    return stats, stats_grpc, health


def code_of(call):
    """The status code a call ends with (OK when it returns)."""
    import grpc
    try:
        call()
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def social():
    """The Social contract's messages and stub (after `generate`)."""
    return (importlib.import_module("musit.social.v1.social_pb2"), importlib.import_module("musit.social.v1.social_pb2_grpc"))


def accounts():
    """The Accounts contract's messages and stub (after `generate`)."""
    return (importlib.import_module("musit.accounts.v1.accounts_pb2"), importlib.import_module("musit.accounts.v1.accounts_pb2_grpc"))


def library():
    """The Library contract's messages and stub (after `generate`)."""
    return (importlib.import_module("musit.library.v1.library_pb2"), importlib.import_module("musit.library.v1.library_pb2_grpc"))
