package dev.valve.observe;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.function.Function;
import java.util.function.Supplier;

import dev.valve.pool.PoolStatus;

import io.helidon.http.HeaderNames;
import io.helidon.http.HeaderValues;
import io.helidon.http.Status;
import io.helidon.webserver.http.HttpRouting;
import io.helidon.webserver.http.ServerResponse;

/**
 * The admin listener's routes: {@code /metrics}, {@code /healthz}, {@code /readyz},
 * {@code /status} and {@code /status.json}. They run on their own listener, never through the
 * proxy: a probe or a scrape never waits in the queue or costs a worker.
 */
public final class AdminRoutes {
    private final Observer observer;
    private final Supplier<Map<String, PoolStatus>> pools;
    private final Supplier<Boolean> stopping;
    private final Supplier<Map<String, Object>> report;
    private final Function<Object, String> json;

    /**
     * @param report the {@link StatusReport}; null in the instant between the listener starting
     *               and the engine knowing its own addresses
     * @param pools  each route's pool by its prefix
     * @param json   the engine's JSON writer
     */
    public AdminRoutes(Observer observer, Supplier<Map<String, PoolStatus>> pools, Supplier<Boolean> stopping,
                       Supplier<Map<String, Object>> report, Function<Object, String> json) {
        this.observer = observer;
        this.pools = pools;
        this.stopping = stopping;
        this.report = report;
        this.json = json;
    }

    public void register(HttpRouting.Builder routing) {
        routing.get("/metrics", (req, res) -> {
            ByteArrayOutputStream scrape = new ByteArrayOutputStream(8192);
            try {
                observer.scrape(scrape);
            } catch (IOException e) {
                throw new IllegalStateException("writing to memory failed", e);
            }
            res.header(HeaderNames.CONTENT_TYPE, observer.metricsContentType());
            res.send(scrape.toByteArray());
        });
        routing.get("/healthz", (req, res) -> text(res, Status.OK_200, "ok"));
        routing.get("/readyz", (req, res) -> {
            Readiness readiness = Readiness.of(pools.get(), stopping.get());
            text(res, readiness.ready() ? Status.OK_200 : Status.SERVICE_UNAVAILABLE_503,
                    (readiness.ready() ? "ready: " : "not ready: ") + readiness.why());
        });
        routing.get("/status", (req, res) -> sendReport(res, "text/html; charset=utf-8", StatusPage::render));
        routing.get("/status.json", (req, res) -> sendReport(res, "application/json", json::apply));
    }

    private void sendReport(ServerResponse res, String contentType, Function<Map<String, Object>, String> render) {
        Map<String, Object> status = report.get();
        if (status == null) {
            text(res, Status.SERVICE_UNAVAILABLE_503, "starting");
            return;
        }
        res.header(HeaderNames.CONTENT_TYPE, contentType);
        res.header(HeaderNames.CACHE_CONTROL, "no-store");
        res.send(render.apply(status).getBytes(StandardCharsets.UTF_8));
    }

    private static void text(ServerResponse res, Status status, String body) {
        res.status(status);
        res.header(HeaderValues.CONTENT_TYPE_TEXT_PLAIN);
        res.header(HeaderNames.CACHE_CONTROL, "no-store");
        res.send((body + "\n").getBytes(StandardCharsets.UTF_8));
    }
}
