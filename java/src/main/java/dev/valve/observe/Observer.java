package dev.valve.observe;

import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.Supplier;

import dev.valve.log.LogSink;
import dev.valve.pool.PoolStatus;

/**
 * Where every finished request is recorded, once: the metrics, the access log line (when on) and
 * the status page's list of recent requests all take it from {@link #finish}.
 */
public final class Observer {
    /** The access log's source tag in the log, as {@code [worker 2]} is a worker's. */
    public static final String ACCESS_LOG_SOURCE = "access";
    private static final int RECENT = 20;

    private final Metrics metrics;
    private final LogSink accessLog;
    private final AccessLog format = new AccessLog();
    private final AtomicReferenceArray<Exchange> recent = new AtomicReferenceArray<>(RECENT);
    private final AtomicLong finished = new AtomicLong();

    /**
     * @param accessLog where access log lines go, or null when the access log is off
     * @param pools     each route's pool state by its prefix (a single app: the one route
     *                  {@code /}), read once per scrape
     * @param pods      service mode's pod counts, or null with local workers
     */
    public Observer(LogSink accessLog, Supplier<Map<String, PoolStatus>> pools, Supplier<Pods> pods) {
        this.accessLog = accessLog;
        this.metrics = new Metrics(pools, pods);
    }

    /** Pods in service mode: serving, and out after a failed request until they answer again. */
    public record Pods(int serving, int suspect) {
    }

    /**
     * Records a request once its answer is sent (or abandoned).
     *
     * @param status the status sent, or 499 when the client left (or the connection broke)
     *               before the answer was complete
     */
    public void finish(Exchange exchange, int status) {
        exchange.status = status;
        exchange.durationNanos = System.nanoTime() - exchange.startNanos;
        metrics.record(exchange);
        if (accessLog != null) {
            accessLog.add(ACCESS_LOG_SOURCE, format.line(exchange));
        }
        recent.set((int) (finished.getAndIncrement() % RECENT), exchange);
    }

    /** Prometheus's text format, for {@code GET /metrics}. */
    void scrape(OutputStream out) throws IOException {
        metrics.scrape(out);
    }

    String metricsContentType() {
        return metrics.contentType();
    }

    /** @param route a route's prefix, or null for every request */
    Map<String, Long> requestsByCode(String route) {
        return metrics.requestsByCode(route);
    }

    /** @param route a route's prefix, or null for every request */
    Map<String, Long> errorsByReason(String route) {
        return metrics.errorsByReason(route);
    }

    /** Requests recorded so far. */
    public long finished() {
        return finished.get();
    }

    /** The last requests recorded, newest first. */
    List<Exchange> recent() {
        long count = finished.get();
        List<Exchange> out = new ArrayList<>(RECENT);
        for (long i = count - 1; i >= 0 && i >= count - RECENT; i--) {
            Exchange exchange = recent.get((int) (i % RECENT));
            if (exchange != null) {
                out.add(exchange);
            }
        }
        return out;
    }
}
