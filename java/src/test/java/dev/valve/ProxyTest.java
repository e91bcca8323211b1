package dev.valve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;

import dev.valve.testing.Await;
import dev.valve.testing.RawHttp;
import dev.valve.testing.StubWorker;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The proxy through the real Helidon server, against stub workers on real sockets. */
class ProxyTest extends StubEngineTest {
    @Override
    protected Map<String, Object> defaults() {
        return Map.of("n_max", 2);
    }

    @ParameterizedTest
    @ValueSource(strings = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
    void methodPathAndQueryPassUnchanged(String method) throws Exception {
        start();
        String target = "/a%2Fb/c%20d;p=1?x=1&y=%20z&x=2&empty=&flag&enc=%E2%82%AC";
        RawHttp.Response response = RawHttp.exchange(port, method + " " + target
                + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        assertEquals(200, response.status());
        StubWorker.Received received = worker().received.poll();
        assertNotNull(received);
        assertEquals(method, received.method());
        assertEquals(target, received.target());
    }

    @Test
    void hopByHopHeadersStayAndForwardingHeadersAreAdded() throws Exception {
        start();
        RawHttp.Response response = RawHttp.exchange(port, "GET /headers HTTP/1.1\r\n"
                + "Host: api.example:8080\r\n"
                + "Connection: close, X-Hop\r\n"
                + "X-Hop: secret\r\n"
                + "Keep-Alive: timeout=300\r\n"
                + "TE: trailers\r\n"
                + "Proxy-Authorization: Basic abc\r\n"
                + "X-Custom: yes\r\n"
                + "Accept: text/plain\r\n"
                + "X-Forwarded-For: 10.1.2.3\r\n"
                + "X-Forwarded-Proto: https\r\n"
                + "X-Valve-Secret: a-guess\r\n\r\n");
        assertEquals(200, response.status());
        var headers = worker().received.poll().headers();
        assertEquals(List.of("yes"), headers.get("x-custom"));
        assertEquals(List.of("text/plain"), headers.get("accept"));
        assertNull(headers.get("x-hop"));
        assertNull(headers.get("keep-alive"));
        assertNull(headers.get("te"));
        assertNull(headers.get("proxy-authorization"));
        assertEquals(List.of("api.example:8080"), headers.get("host"));
        assertEquals(List.of("10.1.2.3, 127.0.0.1"), headers.get("x-forwarded-for"));
        assertEquals(List.of("http"), headers.get("x-forwarded-proto"));
        assertEquals(List.of("api.example:8080"), headers.get("x-forwarded-host"));
        assertEquals(List.of("test-secret"), headers.get("x-valve-secret"), "the engine's secret, never the client's");
        // And on the way back: the worker's Keep-Alive is its own business, the rest is the client's.
        assertNull(response.header("keep-alive"));
        assertEquals("a=1", response.header("set-cookie"));
        assertEquals("worker 1", response.header("x-stub-worker"));
    }

    @Test
    void aChunkedRequestBodyArrivesWhole() throws Exception {
        start();
        RawHttp.Response response = RawHttp.exchange(port, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        assertEquals(200, response.status());
        StubWorker.Received received = worker().received.poll();
        assertEquals(11, received.bodyLength());
        CRC32 crc = new CRC32();
        crc.update("hello world".getBytes(StandardCharsets.US_ASCII));
        assertEquals(crc.getValue(), received.bodyCrc());
        assertEquals(List.of("11"), received.headers().get("content-length"));
    }

    @Test
    void twoHundredMegabytesUpAndDownWithASmallHeap() throws Exception {
        start(Map.of("max_body_size", 300000000));
        long size = 200L * 1024 * 1024;
        CRC32 sent = new CRC32();
        try (RawHttp http = new RawHttp(port)) {
            http.send("POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " + size + "\r\n\r\n");
            byte[] block = new byte[1 << 20];
            for (int i = 0; i < block.length; i++) {
                block[i] = (byte) (i * 31);
            }
            for (long left = size; left > 0; left -= block.length) {
                http.out.write(block);
                sent.update(block);
            }
            http.out.flush();
            RawHttp.Response response = http.read(false);
            assertEquals(200, response.status(), response.text());
            assertTrue(response.text().contains("body=" + size), response.text());
        }
        assertEquals(sent.getValue(), worker().received.poll().bodyCrc());

        try (RawHttp http = new RawHttp(port)) {
            http.send("GET /bytes?n=" + size + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            String status = StubWorker.readLine(http.in);
            assertTrue(status.startsWith("HTTP/1.1 200"), status);
            var headers = StubWorker.readHeaders(http.in);
            assertEquals(List.of(Long.toString(size)), headers.get("content-length"));
            long received = 0;
            byte[] buffer = new byte[1 << 16];
            int count;
            while (received < size && (count = http.in.read(buffer)) >= 0) {
                received += count;
            }
            assertEquals(size, received);
        }
    }

    @Test
    void aStreamedResponseReachesTheClientBeforeItEnds() throws Exception {
        start();
        try (RawHttp http = new RawHttp(port)) {
            http.send("GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            assertTrue(StubWorker.readLine(http.in).startsWith("HTTP/1.1 200"));
            var headers = StubWorker.readHeaders(http.in);
            assertEquals(List.of("chunked"), headers.get("transfer-encoding"));
            // The worker is holding the rest back: this read only returns if the proxy streams.
            int size = Integer.parseInt(StubWorker.readLine(http.in), 16);
            assertEquals("first\n", new String(http.in.readNBytes(size), StandardCharsets.UTF_8));
            worker().streamGate.countDown();
            StubWorker.readLine(http.in);
            size = Integer.parseInt(StubWorker.readLine(http.in), 16);
            assertEquals("second\n", new String(http.in.readNBytes(size), StandardCharsets.UTF_8));
        }
    }

    @Test
    void headKeepsTheContentLengthAndSendsNoBody() throws Exception {
        start();
        try (RawHttp http = new RawHttp(port)) {
            http.send("HEAD /thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            RawHttp.Response response = http.read(true);
            assertEquals(200, response.status());
            assertEquals("33", response.header("content-length"), "the worker's length for the GET body");
            assertEquals(-1, http.in.read(), "no body may follow a HEAD response");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"GET /plain", "HEAD /plain", "GET /status?code=204"})
    void connectionCloseFromTheClientIsHonoured(String request) throws Exception {
        start();
        try (RawHttp http = new RawHttp(port)) {
            http.send(request + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            assertTrue(http.read(request.startsWith("HEAD")).status() < 300);
            assertEquals(-1, http.in.read(), "the server must close after answering");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {204, 304})
    void bodilessStatusesStayBodiless(int code) throws Exception {
        start();
        try (RawHttp http = new RawHttp(port)) {
            // Two requests on one connection: a stray body byte after the first answer would
            // corrupt the second status line.
            http.send("GET /status?code=" + code + " HTTP/1.1\r\nHost: x\r\n\r\n");
            RawHttp.Response response = http.read(false);
            assertEquals(code, response.status());
            assertEquals("\"v1\"", response.header("etag"));
            assertNull(response.header("transfer-encoding"));
            http.send("GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            RawHttp.Response second = http.read(false);
            assertEquals(200, second.status());
            assertTrue(second.text().startsWith("method=GET\ntarget=/second\n"), second.text());
        }
    }

    @Test
    void aWorkerThatDiesMidRequestGives502AndIsReplaced() throws Exception {
        start();
        RawHttp.Response response = RawHttp.get(port, "/die");
        assertEquals(502, response.status());
        assertTrue(response.text().contains("worker 1"), response.text());
        Await.until("a replacement starts", () -> launcher.launched.size() >= 2);
        RawHttp.Response next = RawHttp.get(port, "/after");
        assertEquals(200, next.status());
        assertFalse(next.header("x-stub-worker").equals("worker 1"));
    }

    @Test
    void aWorkerDyingBeforeAResponseHeldInMemoryIsSentGives502AndIsReplaced() throws Exception {
        start();
        RawHttp.Response response = RawHttp.get(port, "/die-mid-body");
        assertEquals(502, response.status());
        assertTrue(response.text().contains("worker 1 broke off its response"), response.text());
        Await.until("a replacement starts", () -> launcher.launched.size() >= 2);
        assertEquals(200, RawHttp.get(port, "/after").status());
    }

    @Test
    void aStreamedResponseCutShortIsNotPassedOffAsComplete() throws Exception {
        // Past memory_buffer a response is streamed, so its head is out before the worker dies.
        start(Map.of("memory_buffer", 65536));
        try (RawHttp http = new RawHttp(port)) {
            http.send("GET /die-mid-body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            assertTrue(StubWorker.readLine(http.in).startsWith("HTTP/1.1 200"));
            var headers = StubWorker.readHeaders(http.in);
            assertEquals(List.of("1000000"), headers.get("content-length"));
            // Only the body may fail: a reset is as honest as an early end, a full body is not.
            long received = http.readUntilClosed();
            assertTrue(received < 1_000_000, "got " + received + " bytes");
        }
    }

    @Test
    void noFreeWorkerWithinTheQueueTimeoutGives503WithRetryAfter() throws Exception {
        start(Map.of("n_max", 1, "queue_timeout", 0.2));
        try (RawHttp slow = new RawHttp(port)) {
            slow.send("GET /sleep?ms=3000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            Await.until("the only worker is busy", () -> worker().inFlight.get() == 1);
            RawHttp.Response response = RawHttp.get(port, "/fast");
            assertEquals(503, response.status());
            assertEquals("1", response.header("retry-after"));
            assertTrue(response.text().contains("no worker became free"), response.text());
            assertEquals(200, slow.read(false).status());
        }
    }

    @Test
    void statusReportsThePool() throws Exception {
        start();
        RawHttp.get(port, "/one");
        String status = valve.statusJson();
        assertTrue(status.contains("\"state\":\"running\""), status);
        assertTrue(status.contains("\"requests\":1"), status);
        assertTrue(status.contains("\"max_in_flight\":1"), status);
        assertArrayEquals(new String[0], java.util.Arrays.stream(valve.drainLog())
                .filter(line -> line.contains("Exception")).toArray());
    }
}
