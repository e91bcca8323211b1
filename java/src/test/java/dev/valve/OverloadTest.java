package dev.valve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

import dev.valve.testing.Await;
import dev.valve.testing.RawHttp;
import dev.valve.testing.StubWorker;

import org.junit.jupiter.api.Test;

/** Overload, abandoned requests, slow clients and shutdown, against one stub worker. */
class OverloadTest extends StubEngineTest {
    @Override
    protected Map<String, Object> defaults() {
        return Map.of("n_max", 1);
    }

    private RawHttp sendAsync(String target) throws Exception {
        RawHttp http = new RawHttp(port);
        http.send("GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        return http;
    }

    @Test
    void pastQueueMaxRequestsGet503AndAdmittedOnesAllComplete() throws Exception {
        start(Map.of("queue_max", 2));
        List<RawHttp> admitted = new ArrayList<>();
        admitted.add(sendAsync("/sleep?ms=500"));
        Await.until("the worker is busy", () -> worker().inFlight.get() == 1);
        admitted.add(sendAsync("/sleep?ms=1"));
        admitted.add(sendAsync("/sleep?ms=1"));
        Await.until("two requests wait", () -> valve.statusJson().contains("\"queued\":2"));
        for (int i = 0; i < 3; i++) {
            RawHttp.Response refused = RawHttp.get(port, "/sleep?ms=1");
            assertEquals(503, refused.status());
            assertEquals("1", refused.header("retry-after"));
            assertTrue(refused.text().contains("busy"), refused.text());
        }
        for (RawHttp http : admitted) {
            try (http) {
                assertEquals(200, http.read(false).status());
            }
        }
        assertEquals(3, worker().received.size(), "exactly the admitted requests reached the worker");
    }

    @Test
    void aClientThatHangsUpDoesNotLeaveTheWorkerBusy() throws Exception {
        start();
        RawHttp gone = sendAsync("/sleep?ms=300");
        Await.until("the request reaches the worker", () -> worker().inFlight.get() == 1);
        gone.close();
        Await.until("the worker is free again", () -> valve.statusJson().contains("\"busy\":0"));
        assertEquals(200, RawHttp.get(port, "/after").status());
    }

    @Test
    void clientsTricklingBodiesDoNotHoldTheWorker() throws Exception {
        start(Map.of("client_timeout", 30));
        List<Socket> tricklers = new ArrayList<>();
        try {
            for (int i = 0; i < 50; i++) {
                Socket socket = new Socket(InetAddress.getLoopbackAddress(), port);
                socket.getOutputStream().write(("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
                        .getBytes(StandardCharsets.US_ASCII));
                tricklers.add(socket);
            }
            // With one worker, any trickler holding it would block every request below.
            for (int i = 0; i < 20; i++) {
                assertEquals(200, RawHttp.get(port, "/normal").status());
            }
            assertEquals(20, worker().received.size(), "no trickling request reached the worker");
            assertEquals(1, worker().maxInFlight.get());
        } finally {
            for (Socket socket : tricklers) {
                socket.close();
            }
        }
    }

    @Test
    void aClientThatReadsSlowlyDoesNotHoldTheWorker() throws Exception {
        start();
        try (RawHttp slow = sendAsync("/bytes?n=20000000")) {
            // The client reads nothing; the engine must still take the whole body from the worker.
            Await.until("the worker is released", () -> worker().received.size() == 1
                    && valve.statusJson().contains("\"busy\":0"));
            assertEquals(200, RawHttp.get(port, "/meanwhile").status());
            RawHttp.Response big = slow.read(false);
            assertEquals(20_000_000, big.body().length);
        }
    }

    @Test
    void stopLetsRequestsInFlightFinishAndRefusesNewOnes() throws Exception {
        start();
        RawHttp inFlight = sendAsync("/sleep?ms=1000");
        Await.until("the request reaches the worker", () -> worker().inFlight.get() == 1);
        Thread stopper = Thread.ofVirtual().start(() -> valve.stop(30));
        Await.until("valve refuses new work", () -> {
            try {
                RawHttp.Response response = RawHttp.get(port, "/late");
                return response.status() == 503 && response.text().contains("shutting down");
            } catch (java.io.IOException e) {
                return false;
            }
        });
        try (inFlight) {
            assertEquals(200, inFlight.read(false).status(), "the in-flight request completes");
        }
        stopper.join();
        assertTrue(!worker().isAlive(), "the worker is stopped after the grace period");
    }

    @Test
    void aWorkerSilentPastTheRequestTimeoutGives504AndIsReplaced() throws Exception {
        start(Map.of("request_timeout", 0.5));
        RawHttp.Response response = RawHttp.get(port, "/sleep?ms=5000");
        assertEquals(504, response.status());
        Await.until("a replacement is launched", () -> launcher.launched.size() == 2);
        assertTrue(!launcher.launched.get(0).isAlive(), "the silent worker is stopped");
        assertEquals(200, RawHttp.get(port, "/after").status());
    }

    @Test
    void manyConcurrentClientsAllGetAnswers() throws Exception {
        start(Map.of("n_max", 2));
        AtomicInteger ok = new AtomicInteger();
        List<Thread> clients = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
            clients.add(Thread.ofVirtual().start(() -> {
                try {
                    if (RawHttp.get(port, "/sleep?ms=5").status() == 200) {
                        ok.incrementAndGet();
                    }
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }));
        }
        for (Thread client : clients) {
            client.join();
        }
        assertEquals(64, ok.get());
    }
}
