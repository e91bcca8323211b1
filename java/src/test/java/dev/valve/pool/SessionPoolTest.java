package dev.valve.pool;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import dev.valve.testing.Await;
import dev.valve.testing.StubLauncher;
import dev.valve.testing.StubWorker;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** A pool whose upstreams serve sticky sessions (a Shiny app), and WebSocket places in either mode. */
class SessionPoolTest {
    private final StubLauncher launcher = new StubLauncher();
    private final List<String> events = new CopyOnWriteArrayList<>();
    /** The pool's clock, in the test's hands: placement holds and idle ages move only when told. */
    private final AtomicLong clock = new AtomicLong();
    private WorkerPool pool;

    private WorkerPool sessions(int nMin, int nMax, int maxSessions, Duration queueTimeout) {
        pool = new WorkerPool(new PoolConfig(nMin, nMax, Duration.ofMinutes(5), Duration.ofHours(1), 10, queueTimeout,
                Recycling.OFF, maxSessions), launcher, events::add, clock::get);
        return pool;
    }

    @AfterEach
    void close() {
        if (pool != null) {
            pool.close();
        }
    }

    @Test
    void aSessionStaysOnItsUpstreamAndSharesIt() throws Exception {
        sessions(1, 2, 5, Duration.ofSeconds(10)).start().get(10, TimeUnit.SECONDS);
        Lease first = pool.visit(List.of(), true, () -> { });
        assertTrue(first.placed());
        String token = first.sessionToken();
        // Shared: a second request of the session, while the first is in flight, gets the same upstream.
        Lease second = pool.visit(List.of(token), true, () -> { });
        assertFalse(second.placed());
        assertSame(first.upstream(), second.upstream());
        first.release();
        second.release();
        assertEquals(1, launcher.launched.size());
    }

    @Test
    void newSessionsGoToTheUpstreamWithFewestAndStartMoreWhenFull() throws Exception {
        sessions(2, 3, 2, Duration.ofSeconds(10)).start().get(10, TimeUnit.SECONDS);
        Lease a = pool.visit(List.of(), true, () -> { });
        Lease b = pool.visit(List.of(), true, () -> { });
        assertNotEquals(a.upstream(), b.upstream(), "the second session goes to the emptier upstream");
        Place aSocket = a.keepPlace();
        Place bSocket = b.keepPlace();
        Lease c = pool.visit(List.of(), true, () -> { });
        Lease d = pool.visit(List.of(), true, () -> { });
        assertNotEquals(c.upstream(), d.upstream());
        c.release();
        d.release();
        // Both upstreams hold two sessions each (one open socket, one placement): the fifth
        // session waits for the third upstream, which starts for it.
        Lease e = pool.visit(List.of(), true, () -> { });
        assertEquals(3, launcher.launched.size());
        assertTrue(List.of(a.upstream(), b.upstream()).stream().noneMatch(e.upstream()::equals));
        e.release();
        assertEquals(1, sessionsOn(a.upstream()));
        aSocket.close();
        bSocket.close();
        assertEquals(0, sessionsOn(a.upstream()));
    }

    @Test
    void whenEveryUpstreamIsFullNewSessionsWaitThenAreRefused() throws Exception {
        sessions(1, 1, 1, Duration.ofMillis(200)).start().get(10, TimeUnit.SECONDS);
        Place socket = pool.visit(List.of(), true, () -> { }).keepPlace();
        PoolException full = assertThrows(PoolException.class, () -> pool.visit(List.of(), true, () -> { }));
        assertEquals(PoolException.Reason.QUEUE_TIMEOUT, full.reason());
        socket.close();
        // The place is free again: the next new session gets it.
        Lease next = pool.visit(List.of(), true, () -> { });
        assertTrue(next.placed());
        next.release();
    }

    @Test
    void aPlacementWithoutItsWebSocketLapses() throws Exception {
        sessions(1, 1, 1, Duration.ofMillis(200)).start().get(10, TimeUnit.SECONDS);
        pool.visit(List.of(), true, () -> { }).release();
        assertThrows(PoolException.class, () -> pool.visit(List.of(), true, () -> { }), "held for the first session's WebSocket");
        clock.addAndGet(WorkerPool.PLACEMENT_HOLD.toNanos() + 1);
        Lease later = pool.visit(List.of(), true, () -> { });
        assertTrue(later.placed());
        later.release();
    }

    @Test
    void aSessionWhoseUpstreamDiedIsPlacedOnALiveOne() throws Exception {
        sessions(2, 2, 5, Duration.ofSeconds(10)).start().get(10, TimeUnit.SECONDS);
        Lease first = pool.visit(List.of(), true, () -> { });
        String token = first.sessionToken();
        Upstream dead = first.upstream();
        first.release();
        ((StubWorker) dead).crash();
        Await.until("the crash is noticed", () -> pool.status().upstreams().stream()
                .noneMatch(upstream -> upstream.name().equals(dead.name())));
        Lease again = pool.visit(List.of(token), true, () -> { });
        assertTrue(again.placed(), "a new session, with a new token for the client");
        assertNotEquals(dead, again.upstream());
        assertNotEquals(token, again.sessionToken());
        again.release();
    }

    @Test
    void anUpstreamThatRefusesAConnectionLeavesWithItsSessions() throws Exception {
        sessions(2, 2, 5, Duration.ofSeconds(10)).start().get(10, TimeUnit.SECONDS);
        Lease first = pool.visit(List.of(), true, () -> { });
        String token = first.sessionToken();
        Upstream refusing = first.upstream();
        // Its process died and is not reaped yet: the proxy's connection was refused.
        first.unreachable();
        assertTrue(pool.status().upstreams().stream().noneMatch(upstream -> upstream.name().equals(refusing.name())));
        Lease again = pool.visit(List.of(token), true, () -> { });
        assertTrue(again.placed());
        assertNotEquals(refusing, again.upstream());
        again.release();
    }

    @Test
    void aForgedTokenOnlyGetsANewSession() throws Exception {
        sessions(1, 1, 5, Duration.ofSeconds(10)).start().get(10, TimeUnit.SECONDS);
        Lease lease = pool.visit(List.of("not-a-token"), true, () -> { });
        assertTrue(lease.placed());
        lease.release();
    }

    @Test
    void anUpstreamWithAnOpenWebSocketIsNeverReapedAsIdle() throws Exception {
        sessions(0, 1, 5, Duration.ofSeconds(10));
        Lease lease = pool.visit(List.of(), true, () -> { });
        Place socket = lease.keepPlace();
        clock.addAndGet(Duration.ofHours(1).toNanos());
        pool.reap();
        assertEquals(1, pool.status().upstreams().size());
        socket.close();
        clock.addAndGet(Duration.ofMinutes(6).toNanos());
        pool.reap();
        assertEquals(0, pool.status().upstreams().size());
    }

    @Test
    void aWebSocketOfAPlumberApiHoldsAPlaceNotARequestSlot() throws Exception {
        pool = new WorkerPool(new PoolConfig(1, 1, Duration.ofMinutes(5), Duration.ofHours(1), 10,
                Duration.ofSeconds(10)), launcher, events::add, clock::get);
        pool.start().get(10, TimeUnit.SECONDS);
        Place socket = pool.acquire().keepPlace();
        // The only upstream is free for requests while the socket stays open.
        Lease request = pool.acquire();
        assertSame(socket.upstream(), request.upstream());
        request.release();
        assertEquals(1, sessionsOn(socket.upstream()));
        clock.addAndGet(Duration.ofHours(1).toNanos());
        pool.reap();
        assertEquals(1, pool.status().upstreams().size(), "n_min = 1 anyway; and its socket is open");
        socket.close();
        assertEquals(0, sessionsOn(socket.upstream()));
    }

    @Test
    void aSessionsWebSocketTakesOverItsOwnPlaceNotAnothers() throws Exception {
        sessions(1, 1, 2, Duration.ofMillis(200)).start().get(10, TimeUnit.SECONDS);
        // Two new sessions, each holding a place for its WebSocket: the worker is full.
        Lease first = pool.visit(List.of(), true, () -> { });
        Lease second = pool.visit(List.of(), true, () -> { });
        first.release();
        second.release();
        assertThrows(PoolException.class, () -> pool.visit(List.of(), true, () -> { }));
        // The first session opens its WebSocket twice (a second tab): the first takes over its
        // place, the second is one more session; the second session's place is still held.
        Place tab = pool.visit(List.of(first.sessionToken()), true, () -> { }).keepPlace();
        Place otherTab = pool.visit(List.of(first.sessionToken()), true, () -> { }).keepPlace();
        assertEquals(2, sessionsOn(tab.upstream()));
        clock.addAndGet(WorkerPool.PLACEMENT_HOLD.toNanos() + 1);
        tab.close();
        Lease third = pool.visit(List.of(), true, () -> { });
        assertTrue(third.placed(), "the lapsed place and the closed tab left room for one");
        third.release();
        otherTab.close();
    }

    @Test
    void aRequestThatStartsNoSessionIsServedEvenWhenEveryWorkerIsFull() throws Exception {
        sessions(1, 1, 1, Duration.ofMillis(200)).start().get(10, TimeUnit.SECONDS);
        Place socket = pool.visit(List.of(), true, () -> { }).keepPlace();
        Lease probe = pool.visit(List.of(), false, () -> { });
        assertSame(socket.upstream(), probe.upstream());
        probe.release();
        assertEquals(1, sessionsOn(socket.upstream()), "a probe holds no place");
        socket.close();
    }

    @Test
    void aReloadLetsASessionsRequestFinishBeforeItsWorkerStops() throws Exception {
        sessions(1, 1, 5, Duration.ofSeconds(10)).start().get(10, TimeUnit.SECONDS);
        Lease inFlight = pool.visit(List.of(), true, () -> { });
        Upstream old = inFlight.upstream();
        pool.reload().get(10, TimeUnit.SECONDS);
        assertTrue(isListed(old), "still answering its request");
        Lease next = pool.visit(List.of(inFlight.sessionToken()), true, () -> { });
        assertNotEquals(old, next.upstream(), "the session goes on on the new worker");
        next.release();
        inFlight.release();
        Await.until("the old worker stops once its request is done", () -> !isListed(old));
    }

    @Test
    void aPlumberWorkerDueForRecyclingWaitsForItsWebSockets() throws Exception {
        pool = new WorkerPool(new PoolConfig(1, 2, Duration.ofMinutes(5), Duration.ofHours(1), 10,
                Duration.ofSeconds(10), new Recycling(1, 0, 0)), launcher, events::add, clock::get);
        pool.start().get(10, TimeUnit.SECONDS);
        // Its first request is its last (max_requests = 1), and it became a WebSocket.
        Place socket = pool.acquire().keepPlace();
        Lease request = pool.acquire();
        assertNotEquals(socket.upstream(), request.upstream(), "a leaving worker takes no new request");
        request.release();
        assertTrue(isListed(socket.upstream()), "its WebSocket is still open");
        socket.close();
        Await.until("it leaves once its WebSocket closed", () -> !isListed(socket.upstream()));
    }

    private boolean isListed(Upstream upstream) {
        return pool.status().upstreams().stream().anyMatch(status -> status.name().equals(upstream.name()));
    }

    private int sessionsOn(Upstream upstream) {
        return pool.status().upstreams().stream().filter(status -> status.name().equals(upstream.name()))
                .mapToInt(PoolStatus.UpstreamStatus::sessions).findFirst().orElseThrow();
    }
}
