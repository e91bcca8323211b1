package dev.valve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.stream.Stream;

import dev.valve.testing.RawHttp;
import dev.valve.testing.StubWorker;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Malformed and hostile HTTP on raw sockets: each gets the right status (or, where no answer is
 * possible, a closed connection), no worker sees it, and the engine keeps serving.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class BadInputTest {
    private static final String CLOSED = "<closed>";
    private StubEngine engine;
    private int port;

    @BeforeAll
    void start() throws ValveException {
        engine = new StubEngine(Map.of("n_max", 1, "client_timeout", 1, "max_body_size", 1000000));
        port = engine.port;
    }

    @AfterAll
    void stop() {
        engine.close();
    }

    private StubWorker worker() {
        return engine.worker();
    }

    static Stream<Arguments> badRequests() {
        String close = "Connection: close\r\n";
        return Stream.of(
                Arguments.of("malformed request line", "GARBAGE\r\n\r\n", "400"),
                Arguments.of("missing HTTP version", "GET /\r\n\r\n", "400"),
                Arguments.of("unknown method", "FOO / HTTP/1.1\r\nHost: x\r\n" + close + "\r\n", "501"),
                Arguments.of("CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n" + close + "\r\n", "405"),
                Arguments.of("TRACE", "TRACE / HTTP/1.1\r\nHost: x\r\n" + close + "\r\n", "405"),
                Arguments.of("request line too long", "GET /" + "a".repeat(20_000) + " HTTP/1.1\r\nHost: x\r\n\r\n", "414"),
                Arguments.of("headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + "b".repeat(40_000) + "\r\n" + close + "\r\n", "431"),
                Arguments.of("headers far too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + "b".repeat(300_000) + "\r\n\r\n", "400"),
                Arguments.of("Content-Length and Transfer-Encoding", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                        + "Transfer-Encoding: chunked\r\n" + close + "\r\n5\r\nhello\r\n0\r\n\r\n", "400"),
                Arguments.of("invalid chunk size", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + close
                        + "\r\nzz\r\nhello\r\n0\r\n\r\n", "400"),
                Arguments.of("negative Content-Length", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n" + close + "\r\nhello", "400"),
                Arguments.of("unparseable Content-Length", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n"
                        + close + "\r\nhello", "400"),
                Arguments.of("Content-Length above max_body_size", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000000\r\n"
                        + close + "\r\nhello", "413"),
                Arguments.of("chunked body above max_body_size", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                        + close + "\r\n" + "f4240\r\n" + "x".repeat(1_000_000) + "\r\n10\r\n" + "x".repeat(16) + "\r\n0\r\n\r\n", "413"),
                Arguments.of("two different Content-Lengths", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
                        + close + "\r\nhello", "400"),
                Arguments.of("NUL in a header value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n" + close + "\r\n", "400"),
                Arguments.of("bare CR in a header value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n" + close + "\r\n", "400"),
                Arguments.of("obsolete line folding", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n" + close + "\r\n", "400"),
                Arguments.of("space in a header name", "GET / HTTP/1.1\r\nHost: x\r\nX A: b\r\n" + close + "\r\n", "400"),
                Arguments.of("no Host header", "GET / HTTP/1.1\r\n" + close + "\r\n", "400"),
                Arguments.of("a request line that never finishes", "GET /waiting-for-the-rest", CLOSED),
                Arguments.of("headers that never finish", "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: still", CLOSED),
                Arguments.of("a body that stops arriving", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly this", CLOSED),
                Arguments.of("a connection that never sends", "", CLOSED));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badRequests")
    void answeredRightAndNoWorkerSeesIt(String what, String request, String expected) throws Exception {
        int before = worker().received.size();
        assertEquals(expected, statusOf(request), what);
        assertEquals(before, worker().received.size(), "a worker saw: " + what);
        assertEquals(200, RawHttp.get(port, "/still-serving").status(), "after: " + what);
    }

    @Test
    void anAbsoluteFormTargetReachesTheWorkerInOriginForm() throws Exception {
        RawHttp.Response response = RawHttp.exchange(port,
                "GET http://example.com/abs/%2F?q=1&q=2 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
        assertEquals(200, response.status());
        assertTrue(response.text().contains("target=/abs/%2F?q=1&q=2\n"), response.text());
    }

    @Test
    void slowAndIdleClientsDoNotStopOthersBeingServed() throws Exception {
        try (Socket idle = connect(); Socket slow = connect()) {
            slow.getOutputStream().write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab"
                    .getBytes(StandardCharsets.US_ASCII));
            for (int i = 0; i < 5; i++) {
                assertEquals(200, RawHttp.get(port, "/meanwhile").status());
            }
            assertTrue(idle.isConnected());
        }
    }

    private Socket connect() throws IOException {
        Socket socket = new Socket(InetAddress.getLoopbackAddress(), port);
        socket.setSoTimeout(20_000);
        return socket;
    }

    /** The status code of the answer, or {@link #CLOSED} when the server hung up without one. */
    private String statusOf(String request) throws IOException {
        try (Socket socket = connect()) {
            socket.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
            String line = StubWorker.readLine(socket.getInputStream());
            return line == null ? CLOSED : line.split(" ")[1];
        } catch (java.net.SocketException e) {
            // Helidon may reset instead of closing when it stops reading mid-request.
            return e.getMessage().contains("reset") ? CLOSED + "(reset)" : "error: " + e;
        }
    }
}
