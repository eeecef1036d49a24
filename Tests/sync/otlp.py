"""A stand-in OpenTelemetry collector for the tests: OTLP/HTTP on loopback, traces
(`/v1/traces`) and logs (`/v1/logs`) decoded with opentelemetry-proto and kept with their
resource's service.name, answered with the protobuf content type (swift-otel's exporter
refuses any other)."""
import gzip
import http.server
import threading

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def _service(resource):
    return next((a.value.string_value for a in resource.attributes if a.key == "service.name"), "")


class Collector:
    """`spans` and `records` are (service.name, message) pairs; `exports` the paths posted."""

    def __init__(self):
        self.spans, self.records, self.exports = [], [], []
        self.lock = threading.Lock()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                answer = collector.take(self.path, body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def take(self, path, body):
        with self.lock:
            self.exports.append(path)
            if path == "/v1/logs":
                request = logs_service_pb2.ExportLogsServiceRequest()
                request.ParseFromString(body)
                for rl in request.resource_logs:
                    self.records += [(_service(rl.resource), r) for sl in rl.scope_logs for r in sl.log_records]
                return logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            for rs in request.resource_spans:
                self.spans += [(_service(rs.resource), sp) for ss in rs.scope_spans for sp in ss.spans]
            return trace_service_pb2.ExportTraceServiceResponse().SerializeToString()

    def clear(self):
        with self.lock:
            self.spans.clear()
            self.records.clear()
            self.exports.clear()

    def shutdown(self):
        self.server.shutdown()
