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
 * (pid, state, requests, idle time, memory), requests and errors by code, the same for each
 * route, and the latest requests. The same data is {@code GET /status.json}, the status page, and R's
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

    /**
     * One route's part: its prefix ({@code /} for a single app), its pool's limits and state.
     */
    public record RouteStatus(String prefix, int nMin, int nMax, PoolStatus pool) {
    }

    /**
     * @param routes every route; a single app is the one route {@code /}. The report's
     *               {@code pool} adds them up, its {@code routes} has each on its own.
     */
    public static Map<String, Object> of(Engine engine, List<RouteStatus> routes, Observer observer) {
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("state", engine.state());
        report.put("url", engine.url());
        report.put("admin_url", engine.adminUrl());
        report.put("upstream", engine.upstream());
        report.put("n_min", engine.nMin());
        report.put("n_max", engine.nMax());
        Map<String, PoolStatus> pools = new LinkedHashMap<>();
        routes.forEach(route -> pools.put(route.prefix(), route.pool()));
        Readiness readiness = Readiness.of(pools, engine.stopping());
        report.put("ready", readiness.ready());
        report.put("readiness", readiness.why());
        report.put("time", Instant.now().toString());

        List<Map<String, Object>> upstreams = new ArrayList<>();
        List<Map<String, Object>> routeParts = new ArrayList<>();
        for (RouteStatus route : routes) {
            List<Map<String, Object>> rows = upstreams(route);
            upstreams.addAll(rows);
            Map<String, Object> part = new LinkedHashMap<>();
            part.put("prefix", route.prefix());
            part.put("n_min", route.nMin());
            part.put("n_max", route.nMax());
            Readiness ready = Readiness.of(route.pool(), engine.stopping());
            part.put("ready", ready.ready());
            part.put("readiness", ready.why());
            part.put("pool", pool(route.pool(), rows));
            part.put("requests", observer.requestsByCode(route.prefix()));
            part.put("errors", observer.errorsByReason(route.prefix()));
            routeParts.add(part);
        }
        report.put("pool", pool(PoolStatus.combined(pools.values()), upstreams));
        report.put("requests", observer.requestsByCode(null));
        report.put("errors", observer.errorsByReason(null));
        report.put("routes", routeParts);
        List<Map<String, Object>> recent = new ArrayList<>();
        for (Exchange exchange : observer.recent()) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("time", Instant.ofEpochMilli(exchange.startMillis).toString());
            row.put("method", exchange.method);
            row.put("target", exchange.target);
            row.put("route", exchange.route);
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

    private static Map<String, Object> pool(PoolStatus pool, List<Map<String, Object>> upstreams) {
        Map<String, Object> part = new LinkedHashMap<>();
        part.put("starting", pool.starting());
        part.put("idle", pool.idle());
        part.put("busy", pool.busy());
        part.put("queued", pool.queued());
        part.put("started", pool.started());
        part.put("failed", pool.failed());
        part.put("exits", pool.exits());
        part.put("upstreams", upstreams);
        return part;
    }

    private static List<Map<String, Object>> upstreams(RouteStatus route) {
        List<Map<String, Object>> rows = new ArrayList<>();
        for (PoolStatus.UpstreamStatus upstream : route.pool().upstreams()) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("name", upstream.name());
            row.put("route", route.prefix());
            row.put("pid", upstream.pid());
            row.put("port", upstream.port());
            row.put("busy", upstream.busy());
            row.put("requests", upstream.requests());
            row.put("max_in_flight", upstream.maxInFlight());
            row.put("sessions", upstream.sessions());
            row.put("idle_seconds", upstream.idleSeconds());
            row.put("rss_bytes", residentBytes(upstream.pid()));
            rows.add(row);
        }
        return rows;
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
