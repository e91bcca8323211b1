package dev.valve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import dev.valve.testing.Await;
import dev.valve.testing.RawHttp;
import dev.valve.testing.StubWorker;

import org.junit.jupiter.api.Test;

/**
 * Valid HTTP that real clients and fronts send, however unusual: HTTP/1.0 (nginx's default
 * upstream protocol, ab, health checkers), pipelining, 100-continue, odd but legal headers.
 * Each must reach the worker intact and come back framed so the client can read it.
 */
class HttpCompatibilityTest extends StubEngineTest {
    @Override
    protected Map<String, Object> defaults() {
        return Map.of("n_max", 1);
    }

    @Test
    void http10WithoutHostIsServedWithALengthAndTheConnectionClosed() throws Exception {
        start();
        try (RawHttp http = new RawHttp(port)) {
            http.send("GET /old?x=1 HTTP/1.0\r\n\r\n");
            RawHttp.Response response = http.read(false);
            assertEquals(200, response.status());
            assertTrue(response.text().startsWith("method=GET\ntarget=/old?x=1\n"), response.text());
            assertEquals(Integer.toString(response.body().length), response.header("content-length"));
            assertNull(response.header("transfer-encoding"));
            assertEquals(-1, http.in.read(), "an HTTP/1.0 request without keep-alive ends the connection");
        }
        StubWorker.Received received = worker().received.poll();
        assertTrue(received.headers().containsKey("host"), "the worker gets a Host even when 1.0 sent none");
    }

    @Test
    void http10WithHostKeepsIt() throws Exception {
        start();
        RawHttp.Response response = RawHttp.exchange(port, "GET /h HTTP/1.0\r\nHost: api.example:8080\r\n\r\n");
        assertEquals(200, response.status());
        assertEquals(List.of("api.example:8080"), worker().received.poll().headers().get("host"));
    }

    @Test
    void http10KeepAliveServesTwoRequestsOnOneConnection() throws Exception {
        start();
        try (RawHttp http = new RawHttp(port)) {
            http.send("GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
            RawHttp.Response first = http.read(false);
            assertEquals(200, first.status());
            assertEquals("keep-alive", first.header("connection"));
            http.send("GET /two HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
            RawHttp.Response second = http.read(false);
            assertEquals(200, second.status());
            assertTrue(second.text().contains("target=/two\n"), second.text());
        }
    }

    @Test
    void pipelinedHttp10KeepAliveRequestsWithBodiesStayInStep() throws Exception {
        start();
        try (RawHttp http = new RawHttp(port)) {
            http.send("POST /a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello"
                    + "POST /b HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc");
            RawHttp.Response first = http.read(false);
            assertTrue(first.text().contains("target=/a\nbody=5\n"), first.text());
            RawHttp.Response second = http.read(false);
            assertTrue(second.text().contains("target=/b\nbody=3\n"), second.text());
            assertEquals(-1, http.in.read(), "the second request did not ask for keep-alive");
        }
    }

    @Test
    void http10AfterHttp11OnOneConnectionIsServed() throws Exception {
        start();
        try (RawHttp http = new RawHttp(port)) {
            http.send("GET /eleven HTTP/1.1\r\nHost: x\r\n\r\n");
            assertEquals(200, http.read(false).status());
            http.send("GET /ten HTTP/1.0\r\n\r\n");
            RawHttp.Response response = http.read(false);
            assertEquals(200, response.status());
            assertTrue(response.text().contains("target=/ten\n"), response.text());
            assertEquals(-1, http.in.read(), "the 1.0 request did not ask for keep-alive");
        }
    }

    @Test
    void anHttp10RequestPipelinedBehindAChunkedHttp11OneStaysInStep() throws Exception {
        start();
        try (RawHttp http = new RawHttp(port)) {
            http.send("POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                    + "POST /after HTTP/1.0\r\nContent-Length: 2\r\n\r\nok");
            assertTrue(http.read(false).text().contains("target=/chunks\nbody=11\n"));
            RawHttp.Response second = http.read(false);
            assertEquals(200, second.status());
            assertTrue(second.text().contains("target=/after\nbody=2\n"), second.text());
        }
    }

    @Test
    void aClientCannotClaimToBeHttp10() throws Exception {
        start();
        try (RawHttp http = new RawHttp(port)) {
            http.send("GET /stream HTTP/1.1\r\nHost: x\r\nX-Valve-Http10: 1\r\n\r\n");
            assertTrue(StubWorker.readLine(http.in).startsWith("HTTP/1.1 200"));
            assertEquals(List.of("chunked"), StubWorker.readHeaders(http.in).get("transfer-encoding"),
                    "streamed as to any HTTP/1.1 client, not held back to learn its length");
            int size = Integer.parseInt(StubWorker.readLine(http.in), 16);
            assertEquals("first\n", new String(http.in.readNBytes(size), StandardCharsets.UTF_8));
            worker().streamGate.countDown();
        }
        assertFalse(worker().received.poll().headers().containsKey("x-valve-http10"));
    }

    @Test
    void aStreamedResponseToAClientThatAskedToCloseArrivesWhole() throws Exception {
        start();
        worker().streamGate.countDown();
        RawHttp.Response response = RawHttp.exchange(port, "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assertEquals(200, response.status());
        assertEquals("first\nsecond\n", response.text());
    }

    @Test
    void http10PostDeliversItsBody() throws Exception {
        start();
        RawHttp.Response response = RawHttp.exchange(port,
                "POST /form HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world");
        assertEquals(200, response.status());
        assertTrue(response.text().contains("body=11\n"), response.text());
    }

    @Test
    void aChunkedWorkerResponseReachesAnHttp10ClientWithALength() throws Exception {
        start();
        worker().streamGate.countDown();
        try (RawHttp http = new RawHttp(port)) {
            http.send("GET /stream HTTP/1.0\r\n\r\n");
            RawHttp.Response response = http.read(false);
            assertEquals(200, response.status());
            assertNull(response.header("transfer-encoding"), "HTTP/1.0 has no chunked coding");
            assertEquals("13", response.header("content-length"));
            assertEquals("first\nsecond\n", response.text());
        }
    }

    @Test
    void aLargeResponseReachesAnHttp10ClientWhole() throws Exception {
        start();
        RawHttp.Response response = RawHttp.exchange(port, "GET /bytes?n=300000 HTTP/1.0\r\n\r\n");
        assertEquals(200, response.status());
        assertEquals("300000", response.header("content-length"));
        assertEquals(300_000, response.body().length);
    }

    @Test
    void pipelinedHttp11RequestsAreAnsweredInOrder() throws Exception {
        start();
        try (RawHttp http = new RawHttp(port)) {
            http.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n"
                    + "GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            for (String target : List.of("/first", "/second", "/third")) {
                RawHttp.Response response = http.read(false);
                assertEquals(200, response.status());
                assertTrue(response.text().contains("target=" + target + "\n"), response.text());
            }
        }
    }

    @Test
    void chunkExtensionsAndTrailersAreValidAndServed() throws Exception {
        start();
        RawHttp.Response response = RawHttp.exchange(port, "POST /ext HTTP/1.1\r\nHost: x\r\n"
                + "Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\nConnection: close\r\n\r\n"
                + "5;name=value\r\nhello\r\n6 ; quoted=\"a b\"\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n");
        assertEquals(200, response.status(), response.text());
        assertTrue(response.text().contains("target=/ext\nbody=11\n"), response.text());
    }

    @Test
    void expectContinueGetsA100BeforeTheBodyIsSent() throws Exception {
        start();
        try (RawHttp http = new RawHttp(port)) {
            http.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
                    + "Connection: close\r\n\r\n");
            assertTrue(StubWorker.readLine(http.in).startsWith("HTTP/1.1 100"), "100 Continue first");
            StubWorker.readHeaders(http.in);
            http.send("data");
            RawHttp.Response response = http.read(false);
            assertEquals(200, response.status());
            assertTrue(response.text().contains("body=4\n"), response.text());
        }
        assertFalse(worker().received.poll().headers().containsKey("expect"), "valve answered the Expect itself");
    }

    @Test
    void largeHeadersAndOddNameCaseArriveIntact() throws Exception {
        start();
        String big = "v".repeat(8 * 1024);
        RawHttp.Response response = RawHttp.exchange(port, "GET /h HTTP/1.1\r\nHost: x\r\nx-CuStOm-NaMe: Odd Case\r\n"
                + "X-Big: " + big + "\r\nConnection: close\r\n\r\n");
        assertEquals(200, response.status());
        StubWorker.Received received = worker().received.poll();
        assertEquals(List.of("Odd Case"), received.headers().get("x-custom-name"));
        assertEquals(List.of(big), received.headers().get("x-big"));
    }

    @Test
    void errorsHelidonAnswersItselfAreValveAnswers() throws Exception {
        start();
        RawHttp.Response response = RawHttp.exchange(port, "GARBAGE\r\n\r\n");
        assertEquals(400, response.status());
        assertTrue(response.text().startsWith("valve: "), response.text());
        assertTrue(response.header("content-type").startsWith("text/plain"), response.header("content-type"));
        assertTrue(drainedLog().stream().anyMatch(line -> line.contains("answered 400")), "the answer is logged");
    }

    @Test
    void aWorkerHeaderNoClientCouldAcceptGives502AndTheWorkerIsReplaced() throws Exception {
        start();
        RawHttp.Response response = RawHttp.get(port, "/bad-header");
        assertEquals(502, response.status());
        assertTrue(response.text().startsWith("valve: worker 1 sent a response that is not valid HTTP"), response.text());
        assertNull(response.header("x bad"));
        Await.until("a replacement starts", () -> launcher.launched.size() >= 2);
        assertEquals(200, RawHttp.get(port, "/after").status());
    }

    @Test
    void aClientLeavingAStreamedResponseFreesTheWorker() throws Exception {
        start(Map.of("queue_timeout", 30));
        try (RawHttp http = new RawHttp(port)) {
            http.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
            assertTrue(StubWorker.readLine(http.in).startsWith("HTTP/1.1 200"));
        }
        // The worker still holds the rest of the stream back (the gate stays shut): only a
        // worker freed by the client's departure can answer this on a one-worker pool.
        RawHttp.Response next = RawHttp.get(port, "/next");
        assertEquals(200, next.status());
        assertEquals(1, launcher.launched.size(), "the same worker answered; none was replaced");
        worker().streamGate.countDown();
    }

    @Test
    void aQueuedRequestWhoseClientHangsUpNeverReachesAWorker() throws Exception {
        start();
        try (RawHttp busy = new RawHttp(port)) {
            busy.send("GET /sleep?ms=2000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            Await.until("the only worker is busy", () -> worker().inFlight.get() == 1);
            RawHttp queued = new RawHttp(port);
            queued.send("GET /abandoned HTTP/1.1\r\nHost: x\r\n\r\n");
            Await.until("the request waits", () -> valve.statusJson().contains("\"queued\":1"));
            queued.close();
            Await.until("the queue is empty again", () -> valve.statusJson().contains("\"queued\":0"));
            assertEquals(200, busy.read(false).status());
        }
        assertEquals(200, RawHttp.get(port, "/later").status());
        List<String> targets = worker().received.stream().map(StubWorker.Received::target).toList();
        assertEquals(List.of("/sleep?ms=2000", "/later"), targets);
        assertTrue(drainedLog().stream().anyMatch(line -> line.contains("dropped from the queue")));
    }

    private final List<String> log = new ArrayList<>();

    private List<String> drainedLog() {
        log.addAll(List.of(valve.drainLog()));
        return log;
    }

    private static final String WEBSOCKET_HANDSHAKE = "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    @Test
    void aWebSocketIsTunnelledAndHoldsAPlaceNotTheWorker() throws Exception {
        start();
        try (RawHttp socket = new RawHttp(port)) {
            socket.send("GET /ws?room=1 HTTP/1.1\r\n" + WEBSOCKET_HANDSHAKE);
            RawHttp.Response handshake = socket.read(true);
            assertEquals(101, handshake.status());
            assertEquals("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", handshake.header("sec-websocket-accept"));
            assertEquals("websocket", handshake.header("upgrade"));
            assertTrue(handshake.header("x-request-id") != null);
            StubWorker.Received received = worker().received.poll();
            assertEquals("/ws?room=1", received.target());
            assertEquals(List.of("test-secret"), received.headers().get("x-valve-secret"));

            // A masked text frame "hello": the stub echoes bytes, the tunnel carries them both ways.
            byte[] frame = {(byte) 0x81, (byte) 0x85, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1};
            socket.out.write(frame);
            socket.out.flush();
            assertArrayEquals(frame, socket.in.readNBytes(frame.length));

            // n_max = 1 and the socket is open: its worker still answers requests.
            assertEquals(200, RawHttp.get(port, "/plain").status());
            assertTrue(valve.statusJson().contains("\"sessions\":1"), valve.statusJson());
        }
        Await.until("the place is given back when the client leaves",
                () -> valve.statusJson().contains("\"sessions\":0"));
    }

    @Test
    void aHandshakeTheWorkerRefusesIsPassedOnAndTheConnectionServesOn() throws Exception {
        start();
        try (RawHttp http = new RawHttp(port)) {
            http.send("GET /status?code=403 HTTP/1.1\r\n" + WEBSOCKET_HANDSHAKE);
            assertEquals(403, http.read(false).status());
            http.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
            assertEquals(200, http.read(false).status());
        }
        assertTrue(valve.statusJson().contains("\"sessions\":0"), valve.statusJson());
    }
}
