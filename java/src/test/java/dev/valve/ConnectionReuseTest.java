package dev.valve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;

import dev.valve.testing.Await;
import dev.valve.testing.RawHttp;
import dev.valve.testing.StubWorker;

import org.junit.jupiter.api.Test;

/**
 * Kept-alive connections to workers: reused while they last, replaced without a failed request
 * when the worker closed them, and never used to send a request twice.
 */
class ConnectionReuseTest extends StubEngineTest {
    @Override
    protected Map<String, Object> defaults() {
        return Map.of("n_max", 1);
    }

    @Test
    void aWorkerKeepsOneConnectionAcrossRequests() throws Exception {
        start();
        for (int i = 0; i < 5; i++) {
            assertEquals(200, RawHttp.get(port, "/r" + i).status());
        }
        assertEquals(5, worker().received.size());
        assertEquals(1, worker().connections.get(), "one connection carried every request");
    }

    @Test
    void aConnectionTheWorkerClosedBetweenRequestsIsReplacedWithoutAFailure() throws Exception {
        start();
        assertEquals(200, RawHttp.get(port, "/first").status());
        Await.until("the worker waits on the kept connection", () -> worker().idleConnections() == 1);
        worker().dropIdleConnections();
        byte[] body = body(3_000_000);
        RawHttp.Response response = post("/after-drop", body);
        assertEquals(200, response.status(), response.text());
        List<StubWorker.Received> received = List.copyOf(worker().received);
        assertEquals(2, received.size(), "the request reached the worker exactly once");
        assertEquals(body.length, received.get(1).bodyLength());
        assertEquals(crc(body), received.get(1).bodyCrc(), "the body sent again is the body the client sent");
        assertEquals(2, worker().connections.get());
    }

    @Test
    void aWorkerThatSaysCloseGetsAFreshConnectionNext() throws Exception {
        start();
        assertEquals(200, RawHttp.get(port, "/close-after").status());
        assertEquals(200, RawHttp.get(port, "/next").status());
        assertEquals(2, worker().connections.get());
        assertEquals(1, launcher.launched.size(), "closing a connection is no failure");
    }

    @Test
    void aWorkerDyingBeforeItAnswersOnAReusedConnectionGives502AndRunsTheRequestOnce() throws Exception {
        start();
        assertEquals(200, RawHttp.get(port, "/warm").status());
        RawHttp.Response response = RawHttp.get(port, "/die");
        assertEquals(502, response.status());
        assertEquals(1, worker().received.stream().filter(r -> r.target().equals("/die")).count());
        Await.until("a replacement starts", () -> launcher.launched.size() >= 2);
        assertEquals(200, RawHttp.get(port, "/after").status());
    }

    @Test
    void aWorkerDyingMidResponseOnAReusedConnectionGives502WithoutARetryWhenNothingWasSent() throws Exception {
        start();
        assertEquals(200, RawHttp.get(port, "/warm").status());
        assertEquals(502, RawHttp.get(port, "/die-mid-body").status());
        assertEquals(1, worker().received.stream().filter(r -> r.target().equals("/die-mid-body")).count());
    }

    @Test
    void aWorkerDyingMidResponseOnAReusedConnectionCutsTheResponseShortWithoutARetry() throws Exception {
        start(Map.of("memory_buffer", 65536));
        assertEquals(200, RawHttp.get(port, "/warm").status());
        try (RawHttp http = new RawHttp(port)) {
            http.send("GET /die-mid-body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            assertTrue(StubWorker.readLine(http.in).startsWith("HTTP/1.1 200"));
            StubWorker.readHeaders(http.in);
            long got = http.readUntilClosed();
            assertTrue(got < 1_000_000, "got " + got + " bytes");
        }
        assertEquals(1, worker().received.stream().filter(r -> r.target().equals("/die-mid-body")).count());
        Await.until("a replacement starts", () -> launcher.launched.size() >= 2);
    }

    @Test
    void requestBodiesOfEveryFramingShareOneConnection() throws Exception {
        start();
        byte[] large = body(2_500_000);
        assertEquals(200, post("/length", large).status());
        RawHttp.Response chunked = RawHttp.exchange(port, "POST /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        assertEquals(200, chunked.status());
        assertEquals(200, RawHttp.exchange(port, "POST /empty HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                + "Connection: close\r\n\r\n").status());
        assertEquals(200, RawHttp.exchange(port, "PUT /small HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                + "Connection: close\r\n\r\nabc").status());
        List<StubWorker.Received> received = List.copyOf(worker().received);
        assertEquals(crc(large), received.get(0).bodyCrc());
        assertEquals(crc("hello world".getBytes(StandardCharsets.US_ASCII)), received.get(1).bodyCrc());
        assertEquals(0, received.get(2).bodyLength());
        assertEquals(crc("abc".getBytes(StandardCharsets.US_ASCII)), received.get(3).bodyCrc());
        assertEquals(1, worker().connections.get(), "every framing left the connection usable");
    }

    private RawHttp.Response post(String target, byte[] body) throws Exception {
        try (RawHttp http = new RawHttp(port)) {
            http.send("POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + body.length
                    + "\r\nConnection: close\r\n\r\n");
            http.out.write(body);
            http.out.flush();
            return http.read(false);
        }
    }

    private static byte[] body(int size) {
        byte[] body = new byte[size];
        for (int i = 0; i < size; i++) {
            body[i] = (byte) (i * 31 + 7);
        }
        return body;
    }

    private static long crc(byte[] bytes) {
        CRC32 crc = new CRC32();
        crc.update(bytes);
        return crc.getValue();
    }
}
