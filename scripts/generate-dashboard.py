#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/musit.json, Musit's Grafana dashboard, from the panel
list below (a dashboard's JSON is mostly layout boilerplate; the queries are what matter
and what Tests/deploy/compose.py checks against a real Prometheus).
    scripts/generate-dashboard.py          # rewrite it
    scripts/generate-dashboard.py --check  # fail if it differs"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "deploy", "grafana", "dashboards", "musit.json")
RATE = "$__rate_interval"
PROM = {"type": "prometheus", "uid": "prometheus"}
LOKI = {"type": "loki", "uid": "loki"}

# (row title, [(panel title, unit, [(PromQL, legend)])]); a row of panels side by side.
ROWS = [
    ("Health", [
        ("Processes up", "none", [('up{job=~"musit.*"}', "{{role}} {{instance}}")]),
        ("Requests by route", "reqps", [
            ('sum by (http_route, http_request_method) (rate(hb_requests_total[%s]))' % RATE,
             "{{http_request_method}} {{http_route}}")]),
        ("Errors by route and status", "reqps", [
            ('sum by (http_route, error_type) (rate(hb_request_errors_total[%s]))' % RATE, "{{error_type}} {{http_route}}")]),
        ("Latency p50 / p99 by route (long-polls left out)", "s", [
            ('histogram_quantile(0.5, sum by (http_route, le) (rate(http_server_request_duration_seconds_bucket{http_route!="/api/v1/events"}[%s])))' % RATE,
             "p50 {{http_route}}"),
            ('histogram_quantile(0.99, sum by (http_route, le) (rate(http_server_request_duration_seconds_bucket{http_route!="/api/v1/events"}[%s])))' % RATE,
             "p99 {{http_route}}")]),
    ]),
    ("Who is listening", [
        ("Long-polls held", "none", [("sum by (role, instance) (musit_long_polls_held)", "{{role}} {{instance}}")]),
        ("Event wake to answer, p50 / p99", "s", [
            ("histogram_quantile(0.5, sum by (le) (rate(musit_event_delivery_seconds_bucket[%s])))" % RATE, "p50"),
            ("histogram_quantile(0.99, sum by (le) (rate(musit_event_delivery_seconds_bucket[%s])))" % RATE, "p99")]),
        ("Events delivered", "ops", [("sum by (role) (rate(musit_events_delivered_total[%s]))" % RATE, "{{role}}")]),
        ("Streams and bytes served", "Bps", [
            ("sum by (role) (rate(musit_stream_bytes_total[%s]))" % RATE, "bytes/s {{role}}"),
            ("sum by (role) (musit_streams_active)", "streams now {{role}}")]),
    ]),
    ("Library and services", [
        ("Uploads", "Bps", [
            ("sum by (role) (rate(musit_upload_bytes_total[%s]))" % RATE, "bytes/s {{role}}"),
            ("sum by (role) (rate(musit_uploads_total[%s]))" % RATE, "songs/s {{role}}")]),
        ("Media volume free", "percentunit", [
            ("min by (instance) (musit_media_free_bytes / musit_media_size_bytes)", "{{instance}}")]),
        ("gRPC calls by service, method and code", "reqps", [
            ("sum by (grpc_service, grpc_method, grpc_code) (rate(grpc_server_handled_total[%s]))" % RATE,
             "{{grpc_method}} {{grpc_code}}")]),
        ("gRPC client latency p99", "s", [
            ("histogram_quantile(0.99, sum by (grpc_method, le) (rate(grpc_client_handling_seconds_bucket[%s])))" % RATE,
             "{{grpc_method}}")]),
    ]),
    ("Database", [
        ("Pool: operations in progress / size", "none", [
            ("sum by (role, instance, db_system) (musit_db_operations_in_progress)", "in progress {{role}} {{instance}}"),
            ("max by (role, instance, db_system) (musit_db_pool_size)", "size {{role}} {{instance}}")]),
        ("Operation time p99 (waiting for a connection included)", "s", [
            ("histogram_quantile(0.99, sum by (db_system, kind, le) (rate(musit_db_operation_duration_seconds_bucket[%s])))" % RATE,
             "{{db_system}} {{kind}}")]),
    ]),
]


def build():
    panels = []
    y = 0
    pid = 1
    for title, row in ROWS:
        panels.append({"type": "row", "title": title, "id": pid, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid += 1
        y += 1
        width = 24 // len(row)
        for i, (ptitle, unit, targets) in enumerate(row):
            panels.append({
                "type": "timeseries", "title": ptitle, "id": pid, "datasource": PROM,
                "gridPos": {"h": 8, "w": width, "x": i * width, "y": y},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                            "tooltip": {"mode": "multi", "sort": "desc"}},
                "targets": [{"datasource": PROM, "expr": expr, "legendFormat": legend, "refId": chr(65 + j)}
                            for j, (expr, legend) in enumerate(targets)],
            })
            pid += 1
        y += 8
    panels.append({"type": "row", "title": "Logs", "id": pid, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    pid += 1
    y += 1
    panels.append({
        "type": "logs", "title": "Logs of the selected service, or of one trace", "id": pid, "datasource": LOKI,
        "gridPos": {"h": 12, "w": 24, "x": 0, "y": y},
        "options": {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending", "enableLogDetails": True},
        "targets": [{"datasource": LOKI, "refId": "A",
                     "expr": '{service_name=~"$service"} | trace_id=~"${trace_id:regex}.*"'}],
    })
    return {
        "uid": "musit-overview", "title": "Musit", "tags": ["musit"], "timezone": "browser",
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "service", "label": "Service", "type": "custom", "multi": True, "includeAll": True,
             "query": "musit-all,musit-gateway,musit-social,musit-stats",
             "current": {"text": "All", "value": "$__all"}, "allValue": "musit-.*"},
            {"name": "trace_id", "label": "Trace id", "type": "textbox", "query": "",
             "current": {"text": "", "value": ""}},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


def main():
    text = json.dumps(build(), indent=2, sort_keys=True) + "\n"
    if "--check" in sys.argv:
        with open(OUT) as f:
            if f.read() != text:
                sys.exit("deploy/grafana/dashboards/musit.json differs from scripts/generate-dashboard.py's output: run it")
        return
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
