package dev.valve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import dev.valve.testing.Await;
import dev.valve.testing.RawHttp;
import dev.valve.testing.StubWorker;

import org.junit.jupiter.api.Test;

/** Access log, request ids, metrics and probes, end to end through the real engine with stub workers. */
class ObserveTest extends StubEngineTest {
    /** The Combined Log Format and valve's four fields, after the log's own time and source tag. */
    static final Pattern ACCESS = Pattern.compile("^\\S+ \\[access] (\\S+) - - \\[([^]]+)] \"(\\S+) (\\S+) (\\S+)\" "
            + "(\\d{3}) (\\d+|-) \"((?:[^\"\\\\]|\\\\.)*)\" \"((?:[^\"\\\\]|\\\\.)*)\" (\\d+\\.\\d{3}) (\\d+\\.\\d{3}|-) "
            + "\"([^\"]*)\" (\\S+)$");

    @Override
    protected Map<String, Object> defaults() {
        return Map.of("n_max", 1, "admin_port", 0);
    }

    private int adminPort() {
        return URI.create(valve.adminUrl()).getPort();
    }

    /**
     * Access lines logged since the last call. A request is recorded just after its answer is
     * sent, so a test waits for the lines it expects.
     */
    private List<Matcher> accessLines(int expected) {
        List<String> log = new ArrayList<>();
        Await.until(expected + " access lines", () -> {
            log.addAll(List.of(valve.drainLog()));
            return log.stream().filter(line -> line.contains(" [access] ")).count() >= expected;
        });
        List<Matcher> lines = new ArrayList<>();
        for (String line : log) {
            if (line.contains(" [access] ")) {
                Matcher matcher = ACCESS.matcher(line);
                assertTrue(matcher.matches(), "an access log line in the expected format: " + line);
                lines.add(matcher);
            }
        }
        return lines;
    }

    @Test
    void everyRequestGetsOneLogLineWithItsIdAndIsCounted() throws Exception {
        start();
        valve.drainLog();
        RawHttp.Response kept = RawHttp.exchange(port, "GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc-123\r\n"
                + "User-Agent: probe \"7\"\r\nReferer: http://r/\r\n\r\n");
        RawHttp.Response replaced = RawHttp.exchange(port, "GET /b HTTP/1.1\r\nHost: h\r\nX-Request-Id: not sane\r\n\r\n");
        RawHttp.Response generated = RawHttp.get(port, "/status?code=404");
        RawHttp.Response refused = RawHttp.exchange(port, "TRACE / HTTP/1.1\r\nHost: h\r\n\r\n");

        assertEquals("abc-123", kept.header("X-Request-Id"));
        String replacedId = replaced.header("X-Request-Id");
        assertTrue(replacedId.matches("[0-9a-f]{32}"), replacedId);
        assertTrue(generated.header("X-Request-Id").matches("[0-9a-f]{32}"));
        assertNotEquals(replacedId, generated.header("X-Request-Id"));
        assertTrue(refused.header("X-Request-Id").matches("[0-9a-f]{32}"));
        List<StubWorker.Received> received = new ArrayList<>(worker().received);
        assertEquals(List.of("abc-123"), received.get(0).headers().get("x-request-id"));
        assertEquals(List.of(replacedId), received.get(1).headers().get("x-request-id"));

        // A request is recorded after its answer is sent, so two in a row may be logged in either order.
        Map<String, Matcher> lines = byTarget(accessLines(4));
        assertEquals(4, lines.size());
        Matcher first = lines.get("/a?x=1");
        assertEquals("127.0.0.1", first.group(1));
        assertEquals("GET", first.group(3));
        assertEquals("/a?x=1", first.group(4));
        assertEquals("HTTP/1.1", first.group(5));
        assertEquals("200", first.group(6));
        assertEquals(Integer.toString(kept.body().length), first.group(7));
        assertEquals("http://r/", first.group(8));
        assertEquals("probe \\\"7\\\"", first.group(9));
        assertEquals(worker().name(), first.group(12));
        assertEquals("abc-123", first.group(13));
        assertEquals(replacedId, lines.get("/b").group(13));
        assertEquals("404", lines.get("/status?code=404").group(6));
        Matcher trace = lines.get("/");
        assertEquals("405", trace.group(6));
        assertEquals("-", trace.group(11), "no worker was leased, so no queue wait");
        assertEquals("-", trace.group(12));
        assertEquals(refused.header("X-Request-Id"), trace.group(13));

        String metrics = metrics();
        assertTrue(metrics.contains("valve_requests_total{code=\"200\"} 2.0"), metrics);
        assertTrue(metrics.contains("valve_requests_total{code=\"404\"} 1.0"), metrics);
        assertTrue(metrics.contains("valve_requests_total{code=\"405\"} 1.0"), metrics);
        assertTrue(metrics.contains("valve_errors_total{code=\"405\",reason=\"method\"} 1.0"), metrics);
        assertTrue(metrics.contains("valve_request_duration_seconds_count 4"), metrics);
        assertTrue(metrics.contains("valve_queue_wait_seconds_count 3"), metrics);
        assertTrue(metrics.contains("valve_workers{state=\"idle\"} 1.0"), metrics);
        assertTrue(metrics.contains("valve_worker_starts_total 1.0"), metrics);
    }

    @Test
    void theLoggedSizeIsTheBodySentWhicheverWayItWent() throws Exception {
        start();
        valve.drainLog();
        // Short (one write with the head), long but held whole, and streamed through the spool.
        List<Integer> sizes = List.of(1_000, 200_000, 3_000_000);
        for (int size : sizes) {
            assertEquals(size, RawHttp.get(port, "/bytes?n=" + size).body().length);
        }
        Map<String, Matcher> lines = byTarget(accessLines(sizes.size()));
        for (int size : sizes) {
            assertEquals(Integer.toString(size), lines.get("/bytes?n=" + size).group(7));
        }
    }

    @Test
    void theAdminPathsOnTheMainPortGoToTheApi() throws Exception {
        start();
        List<String> paths = List.of("/metrics", "/healthz", "/readyz", "/status", "/status.json");
        for (String path : paths) {
            RawHttp.get(port, path);
        }
        assertEquals(paths, worker().received.stream().map(StubWorker.Received::target).toList(),
                "on the main port they are the API's paths");
        // And the admin listener cost the worker nothing.
        for (String path : paths) {
            assertEquals(200, RawHttp.get(adminPort(), path).status(), path);
        }
        assertEquals(5, worker().received.size());
        assertEquals(404, RawHttp.get(adminPort(), "/anything-else").status());
    }

    @Test
    void theAccessLogCanBeTurnedOffWhileMetricsStillCount() throws Exception {
        start(Map.of("access_log", false));
        valve.drainLog();
        assertEquals(200, RawHttp.get(port, "/x").status());
        Await.until("the request is counted",
                () -> status(adminPort(), "/metrics") == 200 && metrics().contains("valve_requests_total{code=\"200\"} 1.0"));
        assertEquals(List.of(), accessLines(0));
    }

    @Test
    void readyUntilStoppingBeginsAndHealthyUntilTheListenerCloses() throws Exception {
        start();
        assertEquals(200, RawHttp.get(adminPort(), "/readyz").status());
        int admin = adminPort();
        // A response held open keeps the stop in its grace period.
        Thread client = Thread.ofVirtual().start(() -> {
            try {
                RawHttp.get(port, "/stream");
            } catch (Exception e) {
                // The stop may cut it; only the probes matter here.
            }
        });
        Await.until("the stream is in flight", () -> valve.statusJson().contains("\"busy\":1"));
        Thread stopper = Thread.ofVirtual().start(() -> valve.stop(30));
        Await.until("/readyz says 503", () -> status(admin, "/readyz") == 503);
        assertEquals(200, status(admin, "/healthz"));
        assertTrue(RawHttp.get(admin, "/readyz").text().contains("stopping"));
        worker().streamGate.countDown();
        stopper.join();
        client.join();
        assertEquals(-1, status(admin, "/healthz"), "the admin listener stops with the engine");
    }

    @Test
    void withoutAnAdminPortThereIsNoAdminListener() throws Exception {
        try (StubEngine engine = new StubEngine(Map.of())) {
            assertNull(engine.valve.adminUrl());
            assertTrue(engine.valve.statusJson().contains("\"admin_url\":null"));
        }
    }

    private static Map<String, Matcher> byTarget(List<Matcher> lines) {
        Map<String, Matcher> byTarget = new HashMap<>();
        for (Matcher line : lines) {
            byTarget.put(line.group(4), line);
        }
        return byTarget;
    }

    private String metrics() {
        try {
            return RawHttp.get(adminPort(), "/metrics").text();
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    private static int status(int port, String path) {
        try {
            return RawHttp.get(port, path).status();
        } catch (Exception e) {
            return -1;
        }
    }
}
