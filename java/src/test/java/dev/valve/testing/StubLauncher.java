package dev.valve.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import dev.valve.pool.LaunchException;
import dev.valve.pool.Upstream;
import dev.valve.pool.UpstreamLauncher;

/** Launches {@link StubWorker}s in-process; can be told to fail, or to hold launches back. */
public final class StubLauncher implements UpstreamLauncher {
    public final List<StubWorker> launched = new CopyOnWriteArrayList<>();
    public final AtomicBoolean failing = new AtomicBoolean();
    public final AtomicInteger attempts = new AtomicInteger();
    /** Workers start fine, then crash a moment later: a crash loop at run time. */
    public final AtomicBoolean crashSoonAfterStart = new AtomicBoolean();
    /** How many of the next launches pass their readiness probe and die before the pool takes them. */
    public final AtomicInteger dieOnArrival = new AtomicInteger();
    private final Map<StubWorker, CompletableFuture<Upstream>> held = new ConcurrentHashMap<>();
    private volatile boolean holding;

    @Override
    public CompletableFuture<Upstream> launch(int id) {
        attempts.incrementAndGet();
        if (failing.get()) {
            return CompletableFuture.failedFuture(
                    new LaunchException("worker " + id + " exited: Error in library(missing)"));
        }
        StubWorker worker;
        try {
            worker = new StubWorker(id);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        launched.add(worker);
        if (dieOnArrival.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
            worker.crash();
        }
        if (crashSoonAfterStart.get()) {
            Thread.ofVirtual().start(() -> {
                try {
                    Thread.sleep(20);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                worker.crash();
            });
        }
        if (!holding) {
            return CompletableFuture.completedFuture(worker);
        }
        CompletableFuture<Upstream> future = new CompletableFuture<>();
        held.put(worker, future);
        return future;
    }

    /** From now on launches stay "starting" until {@link #releaseHeld()}. */
    public void hold() {
        holding = true;
    }

    /** Completes every held launch. */
    public void releaseHeld() {
        holding = false;
        held.forEach((worker, future) -> future.complete(worker));
        held.clear();
    }
}
