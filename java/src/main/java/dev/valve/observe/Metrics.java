package dev.valve.observe;

import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import java.util.function.Supplier;

import dev.valve.pool.PoolStatus;

import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import io.prometheus.metrics.core.datapoints.DistributionDataPoint;
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
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import io.prometheus.metrics.model.snapshots.MetricSnapshots;

/**
 * valve's metrics, in Prometheus's own Java client and exposed in its text format. Requests are
 * counted as they finish, through data points resolved once per label value, so a request costs
 * a few atomic additions; everything about the pools is read from one {@link PoolStatus} snapshot
 * per route and scrape. With several routes every metric has a {@code route} label (the prefix;
 * empty for a request no route took); a single app's metrics have none.
 */
final class Metrics {
    /** Seconds; from well under a fast plumber call (about 1 ms) to past a slow one. */
    private static final double[] SECONDS_BUCKETS = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
            5, 10, 30, 60, 300};
    private static final int MAX_STATUS = 599;
    static final String ROUTE = "route";
    /** The route label of a request that no route took. */
    private static final String NO_ROUTE = "";

    private final boolean byRoute;
    private final PrometheusRegistry registry = new PrometheusRegistry();
    private final PrometheusTextFormatWriter writer = PrometheusTextFormatWriter.create();
    private final Counter requests;
    private final Counter errors;
    private final Histogram duration;
    private final Histogram queueWait;
    /** Each route's data points, resolved once. */
    private final Map<String, RoutePoints> points = new ConcurrentHashMap<>();

    /**
     * @param pools each route's pool by its prefix; a single app is the one route {@code /}
     * @param pods  service mode's pod counts, or null with local workers
     */
    Metrics(Supplier<Map<String, PoolStatus>> pools, Supplier<Observer.Pods> pods) {
        byRoute = !pools.get().keySet().equals(Set.of("/"));
        requests = Counter.builder()
                .name("valve_requests_total")
                .help("Requests answered, by HTTP status code (499: the client left before the answer was complete)")
                .labelNames(labels("code"))
                .withoutExemplars()
                .register(registry);
        errors = Counter.builder()
                .name("valve_errors_total")
                .help("Answers valve gave itself instead of a worker's (502, 503, 504 and refused requests), by code "
                        + "and reason")
                .labelNames(labels("code", "reason"))
                .withoutExemplars()
                .register(registry);
        duration = Histogram.builder()
                .name("valve_request_duration_seconds")
                .help("Time from a request's arrival in valve until its answer was sent, queue wait included")
                .classicOnly()
                .classicUpperBounds(SECONDS_BUCKETS)
                .labelNames(labels())
                .withoutExemplars()
                .register(registry);
        queueWait = Histogram.builder()
                .name("valve_queue_wait_seconds")
                .help("Time a request waited for a worker (0 when one was free)")
                .classicOnly()
                .classicUpperBounds(SECONDS_BUCKETS)
                .labelNames(labels())
                .withoutExemplars()
                .register(registry);
        registry.register(new PoolCollector(pools, pods, byRoute));
    }

    /** Label names, with {@code route} last when there are routes. */
    private String[] labels(String... names) {
        if (!byRoute) {
            return names;
        }
        String[] out = Arrays.copyOf(names, names.length + 1);
        out[names.length] = ROUTE;
        return out;
    }

    /** One route's data points: by status code (filled lazily; racing threads resolve the same point), its histograms. */
    private final class RoutePoints {
        final String route;
        final CounterDataPoint[] requestsByStatus = new CounterDataPoint[MAX_STATUS + 1];
        final Map<String, CounterDataPoint> errorsByReason = new ConcurrentHashMap<>();
        final DistributionDataPoint duration;
        final DistributionDataPoint queueWait;

        RoutePoints(String route) {
            this.route = route;
            this.duration = byRoute ? Metrics.this.duration.labelValues(route) : Metrics.this.duration;
            this.queueWait = byRoute ? Metrics.this.queueWait.labelValues(route) : Metrics.this.queueWait;
        }

        String[] values(String... values) {
            if (!byRoute) {
                return values;
            }
            String[] out = Arrays.copyOf(values, values.length + 1);
            out[values.length] = route;
            return out;
        }

        CounterDataPoint requestsWithStatus(int status) {
            if (status < 0 || status > MAX_STATUS) {
                return requests.labelValues(values(Integer.toString(status)));
            }
            CounterDataPoint point = requestsByStatus[status];
            if (point == null) {
                point = requests.labelValues(values(Integer.toString(status)));
                requestsByStatus[status] = point;
            }
            return point;
        }
    }

    void record(Exchange exchange) {
        String route = exchange.route == null ? NO_ROUTE : exchange.route;
        RoutePoints at = points.computeIfAbsent(route, RoutePoints::new);
        at.requestsWithStatus(exchange.status).inc();
        at.duration.observe(exchange.durationNanos / 1e9);
        if (exchange.queueWaitNanos != Exchange.NONE) {
            at.queueWait.observe(exchange.queueWaitNanos / 1e9);
        }
        if (exchange.failure != null) {
            at.errorsByReason.computeIfAbsent(exchange.status + " " + exchange.failure,
                    key -> errors.labelValues(at.values(Integer.toString(exchange.status), exchange.failure))).inc();
        }
    }

    void scrape(OutputStream out) throws IOException {
        writer.write(out, registry.scrape());
    }

    String contentType() {
        return writer.getContentType();
    }

    /** Requests by status code, as counted so far: of one route, or of all (null). */
    Map<String, Long> requestsByCode(String route) {
        return counts(requests.collect(), route, point -> point.getLabels().get("code"));
    }

    /** valve's own error answers, by {@code "<code> <reason>"}: of one route, or of all (null). */
    Map<String, Long> errorsByReason(String route) {
        return counts(errors.collect(), route,
                point -> point.getLabels().get("code") + " " + point.getLabels().get("reason"));
    }

    private Map<String, Long> counts(CounterSnapshot snapshot, String route,
                                     Function<CounterDataPointSnapshot, String> key) {
        Map<String, Long> out = new TreeMap<>();
        for (CounterDataPointSnapshot point : snapshot.getDataPoints()) {
            if (route == null || !byRoute || route.equals(point.getLabels().get(ROUTE))) {
                out.merge(key.apply(point), (long) point.getValue(), Long::sum);
            }
        }
        return new LinkedHashMap<>(out);
    }

    /** The pools' gauges and counters, all from one snapshot per route and scrape. */
    private record PoolCollector(Supplier<Map<String, PoolStatus>> pools, Supplier<Observer.Pods> pods,
                                 boolean byRoute) implements MultiCollector {
        @Override
        public MetricSnapshots collect() {
            Map<String, PoolStatus> byPrefix = pools.get();
            Points queued = new Points();
            Points workers = new Points();
            Points starts = new Points();
            Points failures = new Points();
            Points exits = new Points();
            Points websockets = new Points();
            byPrefix.forEach((route, status) -> {
                websockets.add(route, null, null,
                        status.upstreams().stream().mapToInt(PoolStatus.UpstreamStatus::sessions).sum());
                queued.add(route, null, null, status.queued());
                workers.add(route, "state", "starting", status.starting());
                workers.add(route, "state", "idle", status.idle());
                workers.add(route, "state", "busy", status.busy());
                starts.add(route, null, null, status.started());
                failures.add(route, null, null, status.failed());
                status.exits().forEach((reason, count) -> exits.add(route, "reason", reason, count));
            });
            List<MetricSnapshot> snapshots = new ArrayList<>();
            snapshots.add(queued.gauge("valve_queue_length", "Requests waiting for a worker"));
            snapshots.add(workers.gauge("valve_workers", "Workers (pod slots in service mode) by state"));
            snapshots.add(websockets.gauge("valve_websockets", "Open WebSocket connections (for a Shiny app, its live sessions)"));
            snapshots.add(starts.counter("valve_worker_starts",
                    "Workers that became ready (pod slots admitted in service mode)"));
            snapshots.add(failures.counter("valve_worker_start_failures", "Worker launches that failed"));
            snapshots.add(exits.counter("valve_worker_exits", "Workers that left the pool, by reason"));
            if (pods != null) {
                Observer.Pods count = pods.get();
                Points byState = new Points();
                byState.add("/", "state", "serving", count.serving());
                byState.add("/", "state", "suspect", count.suspect());
                snapshots.add(byState.gauge("valve_pods", "Service mode: pods serving, and pods out after a failed "
                        + "request until they answer again"));
            }
            return new MetricSnapshots(snapshots);
        }

        /** The data points of one metric: labels and values. */
        private final class Points {
            private final List<Labels> labels = new ArrayList<>();
            private final List<Double> values = new ArrayList<>();

            void add(String route, String label, String value, Number number) {
                Labels of = label == null ? Labels.EMPTY : Labels.of(label, value);
                labels.add(byRoute ? of.add(ROUTE, route) : of);
                values.add(number.doubleValue());
            }

            GaugeSnapshot gauge(String name, String help) {
                GaugeSnapshot.Builder builder = GaugeSnapshot.builder().name(name).help(help);
                for (int i = 0; i < labels.size(); i++) {
                    builder.dataPoint(GaugeDataPointSnapshot.builder().labels(labels.get(i)).value(values.get(i))
                            .build());
                }
                return builder.build();
            }

            CounterSnapshot counter(String name, String help) {
                CounterSnapshot.Builder builder = CounterSnapshot.builder().name(name).help(help);
                for (int i = 0; i < labels.size(); i++) {
                    builder.dataPoint(CounterDataPointSnapshot.builder().labels(labels.get(i)).value(values.get(i))
                            .build());
                }
                return builder.build();
            }
        }
    }
}
