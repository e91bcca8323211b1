package dev.valve.observe;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import dev.valve.pool.PoolStatus;

/**
 * Everything valve can say about itself as one document: the engine, the pool with each worker
 * (pid, state, requests, idle time, memory), requests and errors by code, and the latest
 * requests. The same data is {@code GET /status.json}, the status page, and R's
 * {@code valve_status()}.
 */
public final class StatusReport {
    private StatusReport() {
    }

    /**
     * The engine's own part of the report.
     *
     * @param adminUrl null without an admin listener
     * @param upstream service mode's service URL, or null with local workers
     */
    public record Engine(String state, String url, String adminUrl, int nMin, int nMax, String upstream,
                         boolean stopping) {
    }

    public static Map<String, Object> of(Engine engine, PoolStatus pool, Observer observer) {
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("state", engine.state());
        report.put("url", engine.url());
        report.put("admin_url", engine.adminUrl());
        report.put("upstream", engine.upstream());
        report.put("n_min", engine.nMin());
        report.put("n_max", engine.nMax());
        Readiness readiness = Readiness.of(pool, engine.stopping());
        report.put("ready", readiness.ready());
        report.put("readiness", readiness.why());
        report.put("time", Instant.now().toString());

        Map<String, Object> poolPart = new LinkedHashMap<>();
        poolPart.put("starting", pool.starting());
        poolPart.put("idle", pool.idle());
        poolPart.put("busy", pool.busy());
        poolPart.put("queued", pool.queued());
        poolPart.put("started", pool.started());
        poolPart.put("failed", pool.failed());
        poolPart.put("exits", pool.exits());
        List<Map<String, Object>> upstreams = new ArrayList<>();
        for (PoolStatus.UpstreamStatus upstream : pool.upstreams()) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("name", upstream.name());
            row.put("pid", upstream.pid());
            row.put("port", upstream.port());
            row.put("busy", upstream.busy());
            row.put("requests", upstream.requests());
            row.put("max_in_flight", upstream.maxInFlight());
            row.put("sessions", upstream.sessions());
            row.put("idle_seconds", upstream.idleSeconds());
            row.put("rss_bytes", residentBytes(upstream.pid()));
            upstreams.add(row);
        }
        poolPart.put("upstreams", upstreams);
        report.put("pool", poolPart);

        report.put("requests", observer.requestsByCode());
        report.put("errors", observer.errorsByReason());
        List<Map<String, Object>> recent = new ArrayList<>();
        for (Exchange exchange : observer.recent()) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("time", Instant.ofEpochMilli(exchange.startMillis).toString());
            row.put("method", exchange.method);
            row.put("target", exchange.target);
            row.put("status", exchange.status);
            row.put("duration_ms", exchange.durationNanos / 1e6);
            row.put("queue_wait_ms", exchange.queueWaitNanos == Exchange.NONE ? null : exchange.queueWaitNanos / 1e6);
            row.put("worker", exchange.worker);
            row.put("request_id", exchange.requestId);
            recent.add(row);
        }
        report.put("recent", recent);
        return report;
    }

    /** Resident memory of a local process from Linux's /proc (a short read); -1 where unknown. */
    static long residentBytes(long pid) {
        if (pid <= 0) {
            return -1;
        }
        try {
            for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "status"))) {
                if (line.startsWith("VmRSS:")) {
                    String kib = line.substring("VmRSS:".length()).trim().split("\\s+")[0];
                    return Long.parseLong(kib) * 1024;
                }
            }
        } catch (IOException | RuntimeException e) {
            // Not Linux, or the process exited meanwhile.
        }
        return -1;
    }
}
