package dev.valve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import dev.valve.log.LogSink;
import dev.valve.testing.Await;
import dev.valve.testing.RawHttp;
import dev.valve.testing.StubLauncher;
import dev.valve.testing.StubWorker;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Several apps behind one port, end to end through the real engine with a stub launcher per route. */
class RoutingTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String SOME_DIRECTORY = Path.of(System.getProperty("java.io.tmpdir")).toAbsolutePath()
            .toString();

    private final Map<String, StubLauncher> launchers = new ConcurrentHashMap<>();
    private Valve valve;
    private int port;

    /** @param routes each route's own members (besides what it serves) by prefix */
    private void start(Map<String, Object> top, Map<String, Map<String, Object>> routes) throws Exception {
        start(top, routes, Map.of());
    }

    /** @param shiny the Shiny app directory of each route that serves one */
    private void start(Map<String, Object> top, Map<String, Map<String, Object>> routes, Map<String, Path> shiny)
            throws Exception {
        Map<String, Object> members = new LinkedHashMap<>();
        members.put("port", 0);
        members.put("admin_port", 0);
        members.putAll(top);
        Map<String, Object> byPrefix = new LinkedHashMap<>();
        routes.forEach((prefix, own) -> {
            Map<String, Object> app = new LinkedHashMap<>(own);
            // Never spawned: the stub launcher stands in for R. A directory that exists makes it valid.
            app.put("worker", shiny.containsKey(prefix)
                    ? Map.of("mode", "shiny", "path", shiny.get(prefix).toString())
                    : Map.of("mode", "dir", "path", SOME_DIRECTORY));
            byPrefix.put(prefix, app);
        });
        members.put("routes", byPrefix);
        ValveConfig config = ValveConfig.fromJson(JSON.writeValueAsString(members));
        valve = Valve.startRoutes(config, new LogSink(1000, null),
                route -> launchers.computeIfAbsent(route.prefix(), prefix -> new StubLauncher()), "test-secret");
        port = URI.create(valve.url()).getPort();
    }

    @AfterEach
    void stop() {
        if (valve != null) {
            valve.stop(0);
        }
    }

    private StubWorker worker(String prefix) {
        return launchers.get(prefix).launched.get(0);
    }

    private StubWorker.Received last(String prefix) {
        List<StubWorker.Received> received = new ArrayList<>(worker(prefix).received);
        return received.get(received.size() - 1);
    }

    private static String header(StubWorker.Received received, String name) {
        List<String> values = received.headers().get(name);
        return values == null ? null : String.join(",", values);
    }

    @Test
    void theLongestPrefixTakesTheRequestAndItsWorkersSeeThePathWithoutIt() throws Exception {
        start(Map.of(), Map.of("/api", Map.of(), "/api/v2", Map.of(), "/", Map.of()));

        assertEquals(200, RawHttp.get(port, "/api/echo?x=1&y=%2F").status());
        assertEquals("/echo?x=1&y=%2F", last("/api").target());
        assertEquals("/api", header(last("/api"), "x-forwarded-prefix"));

        // The prefix alone, with or without a query: the app's root.
        RawHttp.get(port, "/api");
        assertEquals("/", last("/api").target());
        RawHttp.get(port, "/api?q=a%20b");
        assertEquals("/?q=a%20b", last("/api").target());
        RawHttp.get(port, "/api/");
        assertEquals("/", last("/api").target());

        // Encoded bytes pass as sent, and a longer prefix wins.
        RawHttp.get(port, "/api/v2/files/a%2Fb%20c?name=%C3%A9");
        assertEquals("/files/a%2Fb%20c?name=%C3%A9", last("/api/v2").target());
        assertEquals("/api/v2", header(last("/api/v2"), "x-forwarded-prefix"));

        // Whole segments only: /apix and an encoded /api are the root route's, passed on as they are.
        RawHttp.get(port, "/apix/y");
        assertEquals("/apix/y", last("/").target());
        assertNull(header(last("/"), "x-forwarded-prefix"));
        RawHttp.get(port, "/%61pi/z");
        assertEquals("/%61pi/z", last("/").target());

        // An absolute-form target is routed by its path.
        RawHttp.exchange(port, "GET http://example.org/api/abs?k=v HTTP/1.1\r\nHost: example.org\r\n\r\n");
        assertEquals("/abs?k=v", last("/api").target());

        // A proxy in front that stripped its own prefix says so; valve adds its route to it.
        RawHttp.exchange(port, "GET /api/echo HTTP/1.1\r\nHost: h\r\nX-Forwarded-Prefix: /outer/\r\n\r\n");
        assertEquals("/outer/api", header(last("/api"), "x-forwarded-prefix"));
        // On the root route the header is the client's, as with a single app.
        RawHttp.exchange(port, "GET /other HTTP/1.1\r\nHost: h\r\nX-Forwarded-Prefix: /outer\r\n\r\n");
        assertEquals("/outer", header(last("/"), "x-forwarded-prefix"));
    }

    @Test
    void aShinyAppUnderAPrefixGetsItsSlashAndACookieOfItsOwn(@TempDir Path app) throws Exception {
        Files.writeString(app.resolve("app.R"), "");
        start(Map.of(), Map.of("/dash", Map.of(), "/", Map.of()), Map.of("/dash", app));

        RawHttp.Response bare = RawHttp.get(port, "/dash?tab=2");
        assertEquals(302, bare.status());
        assertEquals("dash/?tab=2", bare.header("location"));

        RawHttp.Response page = RawHttp.get(port, "/dash/");
        assertEquals(200, page.status());
        String cookie = page.header("set-cookie");
        assertTrue(cookie.startsWith("valve_session=") && cookie.contains("; Path=/dash;"), cookie);
        assertEquals("test-secret", header(last("/dash"), "shiny-shared-secret"));
        assertNull(header(last("/dash"), "x-valve-secret"));

        // The session's next request carries the cookie (and the root app's, which is not this
        // pool's): no new session, so no new cookie.
        RawHttp.Response again = RawHttp.exchange(port, "GET /dash/shared/shiny.js HTTP/1.1\r\nHost: h\r\nCookie: "
                + "valve_session=elsewhere; " + cookie.substring(0, cookie.indexOf(';')) + "\r\n\r\n");
        assertEquals(200, again.status());
        assertTrue(again.headers().getOrDefault("set-cookie", List.of()).stream()
                .noneMatch(value -> value.startsWith("valve_session=")), again.headers().toString());
        assertEquals("/shared/shiny.js", last("/dash").target());
    }

    @Test
    void aSessionWhoseWorkerDiedUnnoticedIsPlacedOnAnotherAtOnce(@TempDir Path app) throws Exception {
        Files.writeString(app.resolve("app.R"), "");
        start(Map.of("n_min", 2, "n_max", 2), Map.of("/dash", Map.of()), Map.of("/dash", app));
        RawHttp.Response page = RawHttp.get(port, "/dash/");
        String cookie = page.header("set-cookie");
        String session = cookie.substring(0, cookie.indexOf(';'));
        StubWorker first = launchers.get("/dash").launched.stream().filter(w -> !w.received.isEmpty()).findFirst()
                .orElseThrow();

        // The session's worker dies while its request is in flight, and the pool hears of the
        // exit only later: the request goes to the other worker, as a new session.
        String id = first.name().substring("worker ".length());
        RawHttp.Response again = RawHttp.exchange(port, "GET /dash/die-unnoticed?ms=3000&id=" + id
                + " HTTP/1.1\r\nHost: h\r\nCookie: " + session + "\r\n\r\n");
        assertEquals(200, again.status(), again.text());
        assertTrue(!again.text().equals(first.name()));
        assertTrue(again.header("set-cookie").startsWith("valve_session="));
        assertTrue(!first.isAlive());
        assertTrue(again.header("set-cookie").indexOf(session.substring("valve_session=".length())) < 0);
    }

    @Test
    void aPathNoRouteTakesIs404FromValveWithoutAWorker() throws Exception {
        start(Map.of("n_min", 0), Map.of("/api", Map.of(), "/admin", Map.of()));

        RawHttp.Response missing = RawHttp.get(port, "/nowhere/x?y=1");
        assertEquals(404, missing.status());
        assertTrue(missing.text().startsWith("valve:"), missing.text());
        assertTrue(missing.text().contains("/admin, /api"), missing.text());
        assertTrue(missing.header("X-Request-Id").matches("[0-9a-f]{32}"));
        assertEquals(404, RawHttp.get(port, "/").status());
        assertEquals(404, RawHttp.get(port, "/administrator").status());
        // n_min = 0: no worker was ever started for those requests.
        assertEquals(0, launchers.get("/api").attempts.get() + launchers.get("/admin").attempts.get());

        // The connection goes on serving after a 404.
        try (RawHttp client = new RawHttp(port)) {
            client.send("GET /nope HTTP/1.1\r\nHost: h\r\n\r\n");
            assertEquals(404, client.read(false).status());
            client.send("GET /api/echo HTTP/1.1\r\nHost: h\r\n\r\n");
            assertEquals(200, client.read(false).status());
        }
        Await.until("the requests are counted", () -> metrics().contains(
                "valve_errors_total{code=\"404\",reason=\"no_route\",route=\"\"} 4.0"));
        String metrics = metrics();
        assertTrue(metrics.contains("valve_requests_total{code=\"200\",route=\"/api\"} 1.0"), metrics);
        assertTrue(metrics.contains("valve_requests_total{code=\"404\",route=\"\"} 4.0"), metrics);
    }

    @Test
    void eachRouteHasItsOwnPoolAndLimits() throws Exception {
        Map<String, Map<String, Object>> routes = new LinkedHashMap<>();
        routes.put("/slow", Map.of("n_min", 1, "n_max", 1, "queue_max", 1, "queue_timeout", 0.5));
        routes.put("/fast", Map.of("n_min", 2));
        start(Map.of("n_max", 3), routes);
        HttpClient client = HttpClient.newHttpClient();
        // Holds /slow's only worker until the gate opens.
        HttpResponse<InputStream> held = client.send(HttpRequest.newBuilder(URI.create(valve.url() + "/slow/stream"))
                .build(), HttpResponse.BodyHandlers.ofInputStream());
        try {
            assertEquals(200, held.statusCode());
            // The other route's workers are free meanwhile.
            for (int i = 0; i < 5; i++) {
                assertEquals(200, RawHttp.get(port, "/fast/echo").status());
            }
            // /slow's own limits: one waits in its queue and times out, the next finds the queue full.
            Thread waiting = Thread.ofVirtual().start(() -> {
                try {
                    assertEquals(503, RawHttp.get(port, "/slow/echo").status());
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            Await.until("a request waits for /slow", () -> queued("/slow") == 1);
            assertEquals(503, RawHttp.get(port, "/slow/echo").status());
            Await.joined(waiting);
            assertEquals(1, launchers.get("/slow").launched.size(), "n_max 1 for /slow");
            assertEquals(2, launchers.get("/fast").launched.size(), "n_min 2 for /fast");
        } finally {
            worker("/slow").streamGate.countDown();
            held.body().close();
        }

        JsonNode status = JSON.readTree(valve.statusJson());
        JsonNode parts = status.get("routes");
        assertEquals(2, parts.size());
        assertEquals("/slow", parts.get(0).get("prefix").asText());
        assertEquals(1, parts.get(0).get("n_max").asInt());
        assertEquals(3, parts.get(1).get("n_max").asInt(), "/fast takes the top-level n_max");
        assertEquals(3, status.get("pool").get("upstreams").size());
        assertEquals(5, parts.get(1).get("requests").get("200").asInt());
        Await.until("the /slow requests are counted", () -> metrics().contains(
                "valve_errors_total{code=\"503\",reason=\"queue_full\",route=\"/slow\"} 1.0"));
        String metrics = metrics();
        assertTrue(metrics.contains("valve_workers{route=\"/fast\",state=\"idle\"} 2.0"), metrics);
        assertTrue(metrics.contains("valve_errors_total{code=\"503\",reason=\"queue_timeout\",route=\"/slow\"} 1.0"),
                metrics);
        HttpResponse<String> page = client.send(HttpRequest.newBuilder(URI.create(valve.adminUrl() + "/status"))
                .build(), HttpResponse.BodyHandlers.ofString());
        assertTrue(page.body().contains("<table id=\"routes\">"), page.body());
        HttpResponse<String> ready = client.send(HttpRequest.newBuilder(URI.create(valve.adminUrl() + "/readyz"))
                .build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, ready.statusCode());
        assertTrue(ready.body().contains("/slow: 1 worker(s) ready; /fast: 2 worker(s) ready"), ready.body());
    }

    @Test
    void aRouteWhoseWorkersCannotStartIsNamed() throws Exception {
        StubLauncher broken = new StubLauncher();
        broken.failing.set(true);
        launchers.put("/broken", broken);
        Map<String, Map<String, Object>> routes = new LinkedHashMap<>();
        routes.put("/fine", Map.of());
        routes.put("/broken", Map.of());
        ValveException e = org.junit.jupiter.api.Assertions.assertThrows(ValveException.class,
                () -> start(Map.of("startup_timeout", 2), routes));
        assertEquals(ValveException.STARTUP, e.kind());
        assertTrue(e.getMessage().startsWith("route /broken: worker 1 exited: Error in library(missing)"),
                e.getMessage());
    }

    private int queued(String prefix) {
        try {
            for (JsonNode route : JSON.readTree(valve.statusJson()).get("routes")) {
                if (route.get("prefix").asText().equals(prefix)) {
                    return route.get("pool").get("queued").asInt();
                }
            }
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
        return -1;
    }

    private String metrics() {
        try {
            return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(valve.adminUrl() + "/metrics"))
                    .build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8)).body();
        } catch (IOException | InterruptedException e) {
            throw new RuntimeException(e);
        }
    }

    @Test
    void aSingleAppKeepsItsPathsHeadersAndMetrics() throws Exception {
        try (StubEngine engine = new StubEngine(Map.of("admin_port", 0))) {
            RawHttp.exchange(engine.port, "GET /api/x HTTP/1.1\r\nHost: h\r\nX-Forwarded-Prefix: /outer\r\n\r\n");
            StubWorker.Received received = engine.worker().received.peek();
            assertEquals("/api/x", received.target());
            assertEquals("/outer", header(received, "x-forwarded-prefix"));
            Await.until("the request is counted", () -> {
                try {
                    return HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                            URI.create(engine.valve.adminUrl() + "/metrics")).build(),
                            HttpResponse.BodyHandlers.ofString()).body().contains("valve_requests_total{code=\"200\"} 1.0");
                } catch (IOException | InterruptedException e) {
                    throw new RuntimeException(e);
                }
            });
        }
    }
}
