import Dispatch
import Prometheus

/// How busy the database is, as the process sees it: operations in progress (each holds a
/// pooled connection on PostgreSQL, or waits for SQLite's one writer), and their time,
/// waiting for the connection included. With the pool's size (`musit_db_pool_size`) the
/// dashboard shows a pool running full before requests start to wait in it.
struct DatabaseMetrics: Sendable {
    private let active: Prometheus.Gauge
    private let duration: DurationHistogram

    init(system: String, kind: String) {
        let labels = [("db_system", system), ("kind", kind)]
        let registry = MetricsSetup.registry
        active = registry.makeGauge(descriptor: .init(metricName: "musit_db_operations_in_progress", unitName: "",
                                                      helpText: "Database transactions and reads in progress, waiting for a connection included."),
                                    labels: labels)
        duration = registry.makeDurationHistogram(
            descriptor: .init(metricName: "musit_db_operation_duration", unitName: "seconds",
                              helpText: "Time of a database transaction or read, waiting for a connection included."),
            labels: labels, buckets: MetricsSetup.durationBuckets)
    }

    func measure<T>(_ body: () async throws -> T) async rethrows -> T {
        active.increment()
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            active.decrement()
            duration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        }
        return try await body()
    }

    static func poolSize(system: String, _ size: Int) {
        MetricsSetup.registry.makeGauge(descriptor: .init(metricName: "musit_db_pool_size", unitName: "",
                                                          helpText: "Connections the database pool may open."),
                                        labels: [("db_system", system)]).set(Double(size))
    }
}
