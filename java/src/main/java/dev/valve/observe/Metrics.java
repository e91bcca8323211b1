package dev.valve.observe;

import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;

import dev.valve.pool.PoolStatus;

import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.model.registry.MultiCollector;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.CounterSnapshot;
import io.prometheus.metrics.model.snapshots.CounterSnapshot.CounterDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot.GaugeDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricSnapshots;

/**
 * valve's metrics, in Prometheus's own Java client and exposed in its text format. Requests are
 * counted as they finish, through data points resolved once per label value, so a request costs
 * a few atomic additions; everything about the pool is read from one {@link PoolStatus} snapshot
 * per scrape.
 */
final class Metrics {
    /** Seconds; from well under a fast plumber call (about 1 ms) to past a slow one. */
    private static final double[] SECONDS_BUCKETS = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
            5, 10, 30, 60, 300};
    private static final int MAX_STATUS = 599;

    private final PrometheusRegistry registry = new PrometheusRegistry();
    private final PrometheusTextFormatWriter writer = PrometheusTextFormatWriter.create();
    private final Counter requests = Counter.builder()
            .name("valve_requests_total")
            .help("Requests answered, by HTTP status code (499: the client left before the answer was complete)")
            .labelNames("code")
            .withoutExemplars()
            .register(registry);
    private final Counter errors = Counter.builder()
            .name("valve_errors_total")
            .help("Answers valve gave itself instead of a worker's (502, 503, 504 and refused requests), by code and reason")
            .labelNames("code", "reason")
            .withoutExemplars()
            .register(registry);
    private final Histogram duration = Histogram.builder()
            .name("valve_request_duration_seconds")
            .help("Time from a request's arrival in valve until its answer was sent, queue wait included")
            .classicOnly()
            .classicUpperBounds(SECONDS_BUCKETS)
            .withoutExemplars()
            .register(registry);
    private final Histogram queueWait = Histogram.builder()
            .name("valve_queue_wait_seconds")
            .help("Time a request waited for a worker (0 when one was free)")
            .classicOnly()
            .classicUpperBounds(SECONDS_BUCKETS)
            .withoutExemplars()
            .register(registry);
    /** By status code; filled lazily (racing threads resolve the same data point). */
    private final CounterDataPoint[] requestsByStatus = new CounterDataPoint[MAX_STATUS + 1];
    private final Map<String, CounterDataPoint> errorsByReason = new ConcurrentHashMap<>();

    /** @param pods service mode's pod counts, or null with local workers */
    Metrics(Supplier<PoolStatus> pool, Supplier<Observer.Pods> pods) {
        registry.register(new PoolCollector(pool, pods));
    }

    void record(Exchange exchange) {
        requestsWithStatus(exchange.status).inc();
        duration.observe(exchange.durationNanos / 1e9);
        if (exchange.queueWaitNanos != Exchange.NONE) {
            queueWait.observe(exchange.queueWaitNanos / 1e9);
        }
        if (exchange.failure != null) {
            errorsByReason.computeIfAbsent(exchange.status + " " + exchange.failure,
                    key -> errors.labelValues(Integer.toString(exchange.status), exchange.failure)).inc();
        }
    }

    private CounterDataPoint requestsWithStatus(int status) {
        if (status < 0 || status > MAX_STATUS) {
            return requests.labelValues(Integer.toString(status));
        }
        CounterDataPoint point = requestsByStatus[status];
        if (point == null) {
            point = requests.labelValues(Integer.toString(status));
            requestsByStatus[status] = point;
        }
        return point;
    }

    void scrape(OutputStream out) throws IOException {
        writer.write(out, registry.scrape());
    }

    String contentType() {
        return writer.getContentType();
    }

    /** Requests by status code, as counted so far. */
    Map<String, Long> requestsByCode() {
        return counts(requests.collect(), "code");
    }

    /** valve's own error answers, by {@code "<code> <reason>"}. */
    Map<String, Long> errorsByReason() {
        Map<String, Long> out = new LinkedHashMap<>();
        for (CounterDataPointSnapshot point : errors.collect().getDataPoints()) {
            out.put(point.getLabels().get("code") + " " + point.getLabels().get("reason"), (long) point.getValue());
        }
        return out;
    }

    private static Map<String, Long> counts(CounterSnapshot snapshot, String label) {
        Map<String, Long> out = new LinkedHashMap<>();
        snapshot.getDataPoints().stream()
                .sorted((a, b) -> a.getLabels().get(label).compareTo(b.getLabels().get(label)))
                .forEach(point -> out.put(point.getLabels().get(label), (long) point.getValue()));
        return out;
    }

    /** The pool's gauges and counters, all from one snapshot per scrape. */
    private record PoolCollector(Supplier<PoolStatus> pool, Supplier<Observer.Pods> pods) implements MultiCollector {
        @Override
        public MetricSnapshots collect() {
            PoolStatus status = pool.get();
            List<io.prometheus.metrics.model.snapshots.MetricSnapshot> snapshots = new ArrayList<>();
            snapshots.add(gauge("valve_queue_length", "Requests waiting for a worker", null, Map.of("", status.queued())));
            Map<String, Number> workers = new LinkedHashMap<>();
            workers.put("starting", status.starting());
            workers.put("idle", status.idle());
            workers.put("busy", status.busy());
            snapshots.add(gauge("valve_workers", "Workers (pod slots in service mode) by state", "state", workers));
            snapshots.add(gauge("valve_websockets", "Open WebSocket connections (for a Shiny app, its live sessions)",
                    null, Map.of("", status.upstreams().stream().mapToInt(PoolStatus.UpstreamStatus::sessions).sum())));
            snapshots.add(counter("valve_worker_starts", "Workers that became ready (pod slots admitted in service mode)",
                    null, Map.of("", status.started())));
            snapshots.add(counter("valve_worker_start_failures", "Worker launches that failed", null,
                    Map.of("", status.failed())));
            snapshots.add(counter("valve_worker_exits", "Workers that left the pool, by reason", "reason",
                    new LinkedHashMap<>(status.exits())));
            if (pods != null) {
                Observer.Pods count = pods.get();
                Map<String, Number> byState = new LinkedHashMap<>();
                byState.put("serving", count.serving());
                byState.put("suspect", count.suspect());
                snapshots.add(gauge("valve_pods", "Service mode: pods serving, and pods out after a failed request "
                        + "until they answer again", "state", byState));
            }
            return new MetricSnapshots(snapshots);
        }

        private static GaugeSnapshot gauge(String name, String help, String label, Map<String, ? extends Number> values) {
            GaugeSnapshot.Builder builder = GaugeSnapshot.builder().name(name).help(help);
            values.forEach((value, number) -> builder.dataPoint(GaugeDataPointSnapshot.builder()
                    .labels(label == null ? Labels.EMPTY : Labels.of(label, value))
                    .value(number.doubleValue())
                    .build()));
            return builder.build();
        }

        private static CounterSnapshot counter(String name, String help, String label,
                                               Map<String, ? extends Number> values) {
            CounterSnapshot.Builder builder = CounterSnapshot.builder().name(name).help(help);
            values.forEach((value, number) -> builder.dataPoint(CounterDataPointSnapshot.builder()
                    .labels(label == null ? Labels.EMPTY : Labels.of(label, value))
                    .value(number.doubleValue())
                    .build()));
            return builder.build();
        }
    }
}
