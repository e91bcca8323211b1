package dev.valve.pool;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import dev.valve.testing.Await;
import dev.valve.testing.RawHttp;
import dev.valve.testing.StubLauncher;
import dev.valve.testing.StubWorker;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class WorkerPoolTest {
    private final StubLauncher launcher = new StubLauncher();
    private final List<String> events = new CopyOnWriteArrayList<>();
    private WorkerPool pool;

    private WorkerPool pool(int nMin, int nMax, Duration maxAge, int queueMax, Duration queueTimeout) {
        pool = new WorkerPool(new PoolConfig(nMin, nMax, maxAge, Duration.ofMillis(20), queueMax, queueTimeout),
                launcher, events::add);
        return pool;
    }

    /** With the pool's clock for idle ages and backoff in the test's hands. */
    private WorkerPool pool(int nMin, int nMax, AtomicLong clock) {
        pool = new WorkerPool(new PoolConfig(nMin, nMax, Duration.ofMinutes(5), Duration.ofMillis(20), 1000,
                Duration.ofSeconds(30)), launcher, events::add, clock::get);
        return pool;
    }

    private WorkerPool pool(int nMin, int nMax) {
        return pool(nMin, nMax, Duration.ofMinutes(5), 1000, Duration.ofSeconds(30));
    }

    @AfterEach
    void close() {
        if (pool != null) {
            pool.close();
        }
    }

    @Test
    void startLaunchesNMinAndWaitsForThem() throws Exception {
        pool(2, 4).start().get(10, TimeUnit.SECONDS);
        PoolStatus status = pool.status();
        assertEquals(2, status.idle());
        assertEquals(2, launcher.launched.size());
    }

    @Test
    void neverTwoRequestsOnOneUpstream() throws Exception {
        pool(2, 2).start().get(10, TimeUnit.SECONDS);
        Map<Upstream, AtomicInteger> inUse = new ConcurrentHashMap<>();
        AtomicInteger worst = new AtomicInteger();
        AtomicInteger overall = new AtomicInteger();
        AtomicInteger overallWorst = new AtomicInteger();
        List<Thread> clients = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            clients.add(Thread.ofVirtual().start(() -> {
                try (Lease lease = pool.acquire()) {
                    AtomicInteger count = inUse.computeIfAbsent(lease.upstream(), u -> new AtomicInteger());
                    worst.accumulateAndGet(count.incrementAndGet(), Math::max);
                    overallWorst.accumulateAndGet(overall.incrementAndGet(), Math::max);
                    Thread.sleep(2);
                    overall.decrementAndGet();
                    count.decrementAndGet();
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }));
        }
        for (Thread client : clients) {
            client.join();
        }
        assertEquals(1, worst.get(), "an upstream had two leases at once");
        assertEquals(2, overallWorst.get(), "both upstreams should have been used at once");
        assertEquals(40, pool.status().upstreams().stream().mapToLong(PoolStatus.UpstreamStatus::requests).sum());
    }

    @Test
    void aSpareStartsAsSoonAsEveryUpstreamIsBusy() throws Exception {
        pool(1, 3).start().get(10, TimeUnit.SECONDS);
        Lease only = pool.acquire();
        Await.until("a spare is ready", () -> pool.status().idle() == 1);
        assertEquals(2, launcher.launched.size());
        only.release();
        // Two idle now: further sequential requests need no more workers.
        for (int i = 0; i < 5; i++) {
            pool.acquire().release();
        }
        assertEquals(2, launcher.launched.size());
    }

    @Test
    void waitersAreServedInArrivalOrder() throws Exception {
        pool(1, 1).start().get(10, TimeUnit.SECONDS);
        Lease first = pool.acquire();
        List<Integer> order = new CopyOnWriteArrayList<>();
        List<Thread> waiters = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            int index = i;
            waiters.add(Thread.ofVirtual().start(() -> {
                try {
                    Lease lease = pool.acquire();
                    order.add(index);
                    lease.release();
                } catch (PoolException e) {
                    throw new AssertionError(e);
                }
            }));
            Await.until("waiter " + i + " is queued", () -> pool.status().queued() == index + 1);
        }
        first.release();
        for (Thread waiter : waiters) {
            waiter.join();
        }
        assertEquals(List.of(0, 1, 2, 3, 4, 5, 6, 7), order);
    }

    @Test
    void scalesUpOnePerWaiterButNeverAboveNMax() throws Exception {
        pool(1, 4).start().get(10, TimeUnit.SECONDS);
        // Held from here, so the spare started by the next line stays starting too.
        launcher.hold();
        Lease held = pool.acquire();
        List<Thread> waiters = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            waiters.add(Thread.ofVirtual().start(() -> {
                try {
                    Lease lease = pool.acquire();
                    Thread.sleep(1);
                    lease.release();
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }));
        }
        Await.until("six requests wait", () -> pool.status().queued() == 6);
        assertEquals(3, pool.status().starting(), "one launch per waiter, capped at n_max");
        // Counted as starting under the pool's lock, handed to the launcher just after it.
        Await.until("the launcher got the launches", () -> launcher.launched.size() == 4);
        launcher.releaseHeld();
        for (Thread waiter : waiters) {
            waiter.join();
        }
        held.release();
        assertEquals(4, pool.status().upstreams().size());
        assertEquals(4, launcher.launched.size());
    }

    @Test
    void idleUpstreamsAreStoppedDownToNMin() throws Exception {
        pool(1, 3, Duration.ofMillis(100), 1000, Duration.ofSeconds(30)).start().get(10, TimeUnit.SECONDS);
        List<Lease> leases = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Thread.ofVirtual().start(() -> {
                try {
                    Lease lease = pool.acquire();
                    synchronized (leases) {
                        leases.add(lease);
                    }
                } catch (PoolException e) {
                    throw new AssertionError(e);
                }
            });
        }
        Await.until("three upstreams are busy", () -> pool.status().busy() == 3);
        leases.forEach(Lease::release);
        Await.until("the pool shrinks to n_min", () -> pool.status().upstreams().size() == 1);
        Await.until("reaped upstreams are stopped",
                () -> launcher.launched.stream().filter(StubWorker::isAlive).count() == 1);
        assertTrue(events.stream().anyMatch(e -> e.contains("idle for more than")), events.toString());
    }

    @Test
    void withNMinZeroNothingRunsUntilARequestAndIdleWorkersAreReapedToNone() throws Exception {
        AtomicLong clock = new AtomicLong();
        pool(0, 2, clock).start().get(10, TimeUnit.SECONDS);
        assertEquals(0, launcher.attempts.get(), "n_min = 0 starts nothing");

        Lease first = pool.acquire();
        StubWorker cold = (StubWorker) first.upstream();
        first.release();
        // Every worker, the spare included, ages out: nothing is kept.
        Await.until("the spare is ready", () -> pool.status().idle() == 2);
        clock.addAndGet(Duration.ofMinutes(6).toNanos());
        pool.reap();
        assertEquals(0, pool.status().upstreams().size());
        Await.until("the reaped workers are stopped", () -> launcher.launched.stream().noneMatch(StubWorker::isAlive));

        try (Lease again = pool.acquire()) {
            assertTrue(((StubWorker) again.upstream()).isAlive());
            assertFalse(again.upstream() == cold, "a new worker serves after the pool emptied");
        }
    }

    private WorkerPool pool(int nMin, int nMax, Recycling recycling) {
        pool = new WorkerPool(new PoolConfig(nMin, nMax, Duration.ofMinutes(5), Duration.ofMillis(20), 1000,
                Duration.ofSeconds(30), recycling), launcher, events::add);
        return pool;
    }

    @Test
    void aWorkerAtMaxRequestsLeavesAfterItsResponseAndItsReplacementStartsMeanwhile() throws Exception {
        pool(1, 1, new Recycling(3, 0, 0)).start().get(10, TimeUnit.SECONDS);
        StubWorker first = launcher.launched.get(0);
        pool.acquire().release();
        pool.acquire().release();
        assertEquals(1, launcher.launched.size(), "two requests are below the limit");
        Lease last = pool.acquire();
        assertSame(first, last.upstream());
        Await.until("the replacement is ready while the last request runs", () -> pool.status().idle() == 1);
        assertTrue(first.isAlive(), "a worker serving its last request is not stopped");
        last.release();
        Await.until("the recycled worker is stopped", () -> !first.isAlive());
        assertTrue(events.stream().anyMatch(e -> e.contains("recycled after 3 requests")), events.toString());
        try (Lease next = pool.acquire()) {
            assertSame(launcher.launched.get(1), next.upstream());
        }
        assertEquals(1, pool.status().upstreams().size());
    }

    @Test
    void aWorkerOnItsWayOutIsReplacedOnceAndNoMore() throws Exception {
        pool(0, 3, new Recycling(1, 0, 0));
        Lease only = pool.acquire();
        Await.until("its replacement is ready", () -> pool.status().idle() == 1);
        only.release();
        Await.until("the recycled worker is stopped", () -> !((StubWorker) only.upstream()).isAlive());
        assertEquals(2, launcher.launched.size(), "one replacement, as the spare of a busy pool");
        assertEquals(1, pool.status().upstreams().size());
    }

    @Test
    void aWorkerAboveMaxWorkerMemoryAfterARequestLeavesAndIsReplaced() throws Exception {
        pool(1, 2, new Recycling(0, 0, 1000)).start().get(10, TimeUnit.SECONDS);
        StubWorker worker = launcher.launched.get(0);
        worker.resident.set(1000);
        pool.acquire().release();
        assertTrue(worker.isAlive(), "at the limit is not above it");
        Lease lease = pool.acquire();
        worker.resident.set(1001);
        lease.release();
        Await.until("the worker above the limit is stopped", () -> !worker.isAlive());
        Await.until("n_min is restored", () -> pool.status().idle() == 1);
        assertTrue(events.stream().anyMatch(e -> e.contains("above max_worker_memory")), events.toString());
    }

    @Test
    void aReloadReplacesEveryWorkerIdleOnesAtOnceBusyOnesAfterTheirRequest() throws Exception {
        pool(2, 4).start().get(10, TimeUnit.SECONDS);
        Lease inFlight = pool.acquire();
        StubWorker busyOld = (StubWorker) inFlight.upstream();
        StubWorker idleOld = launcher.launched.stream().filter(w -> w != busyOld).findFirst().orElseThrow();
        List<StubWorker> old = List.copyOf(launcher.launched);

        pool.reload().get(10, TimeUnit.SECONDS);
        Await.until("the idle old worker is stopped", () -> !idleOld.isAlive());
        assertTrue(busyOld.isAlive(), "a busy old worker finishes its request");
        inFlight.release();
        Await.until("the busy old worker leaves after its request", () -> !busyOld.isAlive());
        for (int i = 0; i < 4; i++) {
            try (Lease lease = pool.acquire()) {
                assertFalse(old.contains((StubWorker) lease.upstream()), "an old worker served after the reload");
            }
        }
        assertTrue(events.stream().anyMatch(e -> e.contains("replaced by a reload")), events.toString());
    }

    @Test
    void oldWorkersServeUntilTheFirstNewOneIsReady() throws Exception {
        pool(1, 2).start().get(10, TimeUnit.SECONDS);
        StubWorker old = launcher.launched.get(0);
        launcher.hold();
        var reload = pool.reload();
        Await.until("the new worker is starting", () -> launcher.launched.size() == 2);
        try (Lease lease = pool.acquire()) {
            assertSame(old, lease.upstream());
        }
        assertFalse(reload.isDone());
        launcher.releaseHeld();
        reload.get(10, TimeUnit.SECONDS);
        Await.until("the old worker is stopped", () -> !old.isAlive());
        try (Lease lease = pool.acquire()) {
            assertSame(launcher.launched.get(1), lease.upstream());
        }
    }

    @Test
    void aReloadWhoseNewCodeCannotStartKeepsTheOldWorkers() throws Exception {
        pool(2, 2).start().get(10, TimeUnit.SECONDS);
        List<StubWorker> old = List.copyOf(launcher.launched);
        launcher.failing.set(true);
        ExecutionException failed = assertThrows(ExecutionException.class, () -> pool.reload().get(10, TimeUnit.SECONDS));
        assertTrue(failed.getCause().getMessage().contains("Error in library(missing)"), failed.getCause().toString());
        assertTrue(old.stream().allMatch(StubWorker::isAlive));
        Lease first = pool.acquire();
        Lease second = pool.acquire();
        assertTrue(old.contains((StubWorker) first.upstream()) && old.contains((StubWorker) second.upstream()));
        first.release();
        second.release();
        assertEquals(2, pool.status().idle());

        // Fixed code: the next reload goes through.
        launcher.failing.set(false);
        pool.reload().get(10, TimeUnit.SECONDS);
        Await.until("the old workers are stopped", () -> old.stream().noneMatch(StubWorker::isAlive));
    }

    @Test
    void aLaunchInProgressAtTheReloadJoinsAsOldAndANewOneStillStarts() throws Exception {
        pool(1, 3).start().get(10, TimeUnit.SECONDS);
        launcher.hold();
        Lease held = pool.acquire();
        Await.until("the spare is starting", () -> launcher.launched.size() == 2);
        StubWorker spare = launcher.launched.get(1);
        var reload = pool.reload();
        launcher.releaseHeld();
        reload.get(10, TimeUnit.SECONDS);
        Await.until("the spare, started with the old code, is stopped", () -> !spare.isAlive());
        assertEquals(3, launcher.launched.size());
        assertTrue(launcher.launched.get(2).isAlive());
        held.release();
        Await.until("the held old worker leaves after its request", () -> !launcher.launched.get(0).isAlive());
    }

    @Test
    void aFullQueueRefusesAtOnce() throws Exception {
        pool(1, 1, Duration.ofMinutes(5), 1, Duration.ofSeconds(30)).start().get(10, TimeUnit.SECONDS);
        Lease held = pool.acquire();
        Thread waiter = Thread.ofVirtual().start(() -> {
            try (Lease lease = pool.acquire()) {
                assertSame(held.upstream(), lease.upstream());
            } catch (PoolException e) {
                throw new AssertionError(e);
            }
        });
        Await.until("one request waits", () -> pool.status().queued() == 1);
        PoolException full = assertThrows(PoolException.class, pool::acquire);
        assertEquals(PoolException.Reason.QUEUE_FULL, full.reason());
        held.release();
        waiter.join();
    }

    @Test
    void waitingTooLongGivesUp() throws Exception {
        pool(1, 1, Duration.ofMinutes(5), 10, Duration.ofMillis(50)).start().get(10, TimeUnit.SECONDS);
        Lease held = pool.acquire();
        PoolException timeout = assertThrows(PoolException.class, pool::acquire);
        assertEquals(PoolException.Reason.QUEUE_TIMEOUT, timeout.reason());
        assertEquals(0, pool.status().queued());
        held.release();
        pool.acquire().release();
    }

    @Test
    void aDeadUpstreamLeavesAndIsReplaced() throws Exception {
        pool(1, 2).start().get(10, TimeUnit.SECONDS);
        StubWorker first = launcher.launched.get(0);
        first.crash();
        Await.until("a replacement is ready", () -> launcher.launched.size() == 2 && pool.status().idle() == 1);
        try (Lease lease = pool.acquire()) {
            assertSame(launcher.launched.get(1), lease.upstream());
        }
    }

    @Test
    void aDiscardedUpstreamIsStopped() throws Exception {
        pool(1, 2).start().get(10, TimeUnit.SECONDS);
        Lease lease = pool.acquire();
        StubWorker worker = (StubWorker) lease.upstream();
        lease.discard();
        Await.until("the discarded upstream is stopped", () -> !worker.isAlive());
        Await.until("n_min is restored", () -> pool.status().idle() == 1);
        assertEquals(2, launcher.launched.size());
    }

    @Test
    void aFailedLaunchFailsStartAndWaitersAtOnce() {
        launcher.failing.set(true);
        ExecutionException startError = assertThrows(ExecutionException.class,
                () -> pool(1, 2).start().get(10, TimeUnit.SECONDS));
        assertTrue(startError.getCause().getMessage().contains("Error in library(missing)"));
        pool.close();

        pool(0, 2);
        PoolException noUpstream = assertThrows(PoolException.class, pool::acquire);
        assertEquals(PoolException.Reason.NO_UPSTREAM, noUpstream.reason());
        assertTrue(noUpstream.getMessage().contains("Error in library(missing)"));
    }

    @Test
    void repeatedLaunchFailuresBackOffInsteadOfSpinning() throws Exception {
        AtomicLong clock = new AtomicLong();
        pool(1, 2, clock);
        launcher.failing.set(true);
        pool.start();
        // The pool's clock stands still between steps, so every launch below is the one it allows.
        Await.until("the first failure is retried at once", () -> launcher.attempts.get() >= 2);
        assertEquals(2, launcher.attempts.get(), "the second failure waits");
        clock.addAndGet(Duration.ofMillis(250).toNanos());
        Await.until("a retry after 250 ms", () -> launcher.attempts.get() >= 3);
        assertEquals(3, launcher.attempts.get(), "the third failure waits");
        clock.addAndGet(Duration.ofMillis(500).toNanos());
        Await.until("a retry after 500 ms more", () -> launcher.attempts.get() >= 4);
        assertEquals(4, launcher.attempts.get(), "the fourth failure waits");
        launcher.failing.set(false);
        clock.addAndGet(Duration.ofSeconds(1).toNanos());
        Await.until("the pool recovers once launches work", () -> pool.status().idle() == 1);
        assertEquals(5, launcher.attempts.get());
    }

    @Test
    void workersThatKeepCrashingAreRelaunchedWithBackoff() throws Exception {
        AtomicLong clock = new AtomicLong();
        pool(1, 2, clock).start().get(10, TimeUnit.SECONDS);
        launcher.crashSoonAfterStart.set(true);
        launcher.launched.get(0).crash();
        // Each crash counts as a failure: the first is relaunched at once, the next waits.
        Await.until("the relaunched worker crashed too", () -> exits() == 2);
        assertEquals(2, launcher.attempts.get(), "a crash loop waits");
        clock.addAndGet(Duration.ofMillis(250).toNanos());
        Await.until("a relaunch after 250 ms, crashed", () -> exits() == 3);
        assertEquals(3, launcher.attempts.get(), "a crash loop waits");
        launcher.crashSoonAfterStart.set(false);
        clock.addAndGet(Duration.ofMillis(500).toNanos());
        Await.until("the pool recovers once workers stay up", () -> pool.status().idle() == 1);
        assertEquals(4, launcher.attempts.get());
    }

    private long exits() {
        return events.stream().filter(e -> e.endsWith(" exited")).count();
    }

    @Test
    void withoutALauncherAdmittedUpstreamsServeAndNothingIsStartedOrStopped() throws Exception {
        AtomicLong clock = new AtomicLong();
        pool = new WorkerPool(new PoolConfig(0, 4, Duration.ofMillis(50), Duration.ofMinutes(10), 100,
                Duration.ofSeconds(30)), null, events::add, clock::get);
        StubWorker a = new StubWorker(1);
        StubWorker b = new StubWorker(2);
        List<Upstream> failed = new CopyOnWriteArrayList<>();
        try {
            pool.admit(a, () -> failed.add(a));
            pool.admit(b, () -> failed.add(b));
            Lease first = pool.acquire();
            Lease second = pool.acquire();
            assertEquals(200, RawHttp.get(first.upstream().port(), "/sleep?ms=1").status());
            assertEquals(200, RawHttp.get(second.upstream().port(), "/sleep?ms=1").status());
            assertEquals(1, a.received.size(), "each admitted upstream took one request");
            assertEquals(1, b.received.size(), "each admitted upstream took one request");

            // Below n_max with a request waiting: a launcher would be asked now; there is none.
            AtomicReference<Upstream> servedLater = new AtomicReference<>();
            Thread waiter = Thread.ofVirtual().start(() -> {
                try (Lease lease = pool.acquire()) {
                    servedLater.set(lease.upstream());
                } catch (PoolException e) {
                    throw new AssertionError(e);
                }
            });
            Await.until("a request waits", () -> pool.status().queued() == 1);
            assertEquals(0, pool.status().starting(), "nothing is started without a launcher");
            first.release();
            Await.joined(waiter);
            assertSame(first.upstream(), servedLater.get(), "the freed upstream went to the waiting request");
            second.release();

            clock.addAndGet(Duration.ofHours(1).toNanos());
            pool.reap();
            assertEquals(2, pool.status().idle(), "admitted upstreams are not reaped, whatever their age");

            // A failed request takes an admitted upstream out and tells its owner, who decides.
            Lease failing = pool.acquire();
            StubWorker failedWorker = (StubWorker) failing.upstream();
            failing.discard();
            assertEquals(List.of(failedWorker), failed);
            assertTrue(failedWorker.isAlive(), "the pool never stops what it did not launch");
            assertEquals(1, pool.status().upstreams().size());

            Lease busy = pool.acquire();
            pool.retire(busy.upstream());
            assertEquals(1, pool.status().busy(), "a busy retired upstream finishes its request first");
            busy.release();
            assertEquals(0, pool.status().upstreams().size());
            assertEquals(List.of(failedWorker), failed, "retiring is not a failure");
            assertEquals(2, pool.status().started());
            assertEquals(0, pool.status().failed());
        } finally {
            a.stop(Duration.ZERO);
            b.stop(Duration.ZERO);
        }
    }

    @Test
    void closeLetsInFlightRequestsFinish() throws Exception {
        pool(1, 1).start().get(10, TimeUnit.SECONDS);
        Lease inFlight = pool.acquire();
        StubWorker worker = (StubWorker) inFlight.upstream();
        Thread closer = Thread.ofVirtual().start(() -> pool.close(Duration.ofSeconds(20)));
        Await.until("new requests are refused", () -> {
            try {
                pool.acquire().release();
                return false;
            } catch (PoolException e) {
                return e.reason() == PoolException.Reason.CLOSED;
            }
        });
        assertTrue(worker.isAlive(), "the in-flight request's upstream must not be stopped yet");
        inFlight.release();
        closer.join();
        assertFalse(worker.isAlive());
    }

    @Test
    void aWorkerThatDiesRightAfterItsProbeIsNeverHandedOut() throws Exception {
        pool(0, 2);
        launcher.dieOnArrival.set(1);
        Lease first = pool.acquire();
        StubWorker dead = launcher.launched.get(0);
        assertFalse(dead.isAlive());
        assertTrue(((StubWorker) first.upstream()).isAlive(), "the first request got a dead worker");
        Lease second = pool.acquire();
        assertTrue(((StubWorker) second.upstream()).isAlive(), "the second request got a dead worker");
        PoolStatus status = pool.status();
        assertTrue(status.upstreams().stream().noneMatch(u -> u.name().equals(dead.name())), status.toString());
        assertTrue(status.upstreams().size() <= 2, "more upstreams than n_max: " + status);
        first.release();
        second.release();
    }

    @Test
    void aWorkerThatDiesRightAfterItsProbeIsCountedOnce() throws Exception {
        pool(0, 1, Duration.ofMillis(50), 1000, Duration.ofSeconds(30));
        launcher.dieOnArrival.set(1);
        Lease held = pool.acquire();
        Await.until("nothing is idle", () -> pool.status().idle() == 0);
        launcher.hold();
        Thread waiter = Thread.ofVirtual().start(() -> {
            try {
                pool.acquire().release();
            } catch (PoolException e) {
                throw new AssertionError(e);
            }
        });
        Await.until("a request waits", () -> pool.status().queued() == 1);
        assertEquals(0, pool.status().starting(), "n_max is 1 and its one worker is busy: nothing may start");
        assertEquals(1, launcher.launched.stream().filter(StubWorker::isAlive).count());
        held.release();
        Await.joined(waiter);
    }

    @Test
    void anInterruptedRequestLeavesTheQueue() throws Exception {
        pool(1, 1).start().get(10, TimeUnit.SECONDS);
        Lease held = pool.acquire();
        AtomicReference<Throwable> outcome = new AtomicReference<>();
        AtomicBoolean stillInterrupted = new AtomicBoolean();
        Thread waiter = Thread.ofVirtual().start(() -> {
            try {
                pool.acquire().release();
                outcome.set(new AssertionError("an abandoned request got a worker"));
            } catch (Throwable e) {
                stillInterrupted.set(Thread.currentThread().isInterrupted());
                outcome.set(e);
            }
        });
        Await.until("the request waits", () -> pool.status().queued() == 1);
        waiter.interrupt();
        Await.joined(waiter);
        PoolException abandoned = assertInstanceOf(PoolException.class, outcome.get());
        assertEquals(PoolException.Reason.CLOSED, abandoned.reason());
        assertEquals("the request was abandoned", abandoned.getMessage());
        assertTrue(stillInterrupted.get(), "the interrupt is kept for the caller");
        assertEquals(0, pool.status().queued());
        held.release();
        assertEquals(1, pool.status().idle(), "the freed worker went to nobody");

        // A thread interrupted before it has to wait never joins the queue.
        Lease again = pool.acquire();
        Thread.currentThread().interrupt();
        try {
            PoolException early = assertThrows(PoolException.class, pool::acquire);
            assertEquals(PoolException.Reason.CLOSED, early.reason());
            assertEquals("the request was abandoned", early.getMessage());
        } finally {
            assertTrue(Thread.interrupted(), "the interrupt is kept for the caller");
        }
        assertEquals(0, pool.status().queued());
        again.release();
        pool.acquire().release();
    }

    @Test
    void closeInterruptedDuringItsGraceStillStopsEveryWorker() throws Exception {
        pool(1, 2).start().get(10, TimeUnit.SECONDS);
        Lease inFlight = pool.acquire();
        Await.until("a spare is ready", () -> pool.status().idle() == 1);
        Thread closer = Thread.ofPlatform().start(() -> pool.close(Duration.ofMinutes(10)));
        Await.until("the pool refuses requests", () -> refused(PoolException.Reason.CLOSED));
        closer.interrupt();
        Await.joined(closer);
        Await.until("every worker is stopped", () -> launcher.launched.stream().noneMatch(StubWorker::isAlive));
        assertEquals(2, launcher.launched.size());
        inFlight.release();
    }

    private boolean refused(PoolException.Reason reason) {
        try {
            pool.acquire().release();
            return false;
        } catch (PoolException e) {
            return e.reason() == reason;
        }
    }
}
