package dev.valve.pool;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;

import dev.valve.pool.PoolException.Reason;

/**
 * A pool of upstreams, each serving at most one request at a time, with a fair FIFO queue in
 * front of them.
 *
 * <p>Rules: an upstream that frees up goes straight to the longest-waiting request (never to a
 * newcomer); when requests wait and the pool is below {@code nMax}, one upstream is launched per
 * waiting request not already covered by a launch in progress, plus one spare as soon as every
 * upstream is busy; idle upstreams are reused most recently used first, and those older than
 * {@code maxAge} are stopped down to {@code nMin}; dead upstreams leave the pool at once and are
 * replaced when needed. Launch failures and crashes back off exponentially, so a broken API never
 * makes the engine spin.
 *
 * <p>All state is guarded by one lock; nothing slow (launching, stopping, waiting) happens while
 * it is held.
 */
public final class WorkerPool implements AutoCloseable {
    private static final Duration BACKOFF_BASE = Duration.ofMillis(250);
    private static final Duration BACKOFF_MAX = Duration.ofSeconds(30);
    private static final Duration STOP_GRACE = Duration.ofSeconds(3);

    private final PoolConfig config;
    private final UpstreamLauncher launcher;
    private final Consumer<String> log;
    private final ScheduledExecutorService timer;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition allIdle = lock.newCondition();
    /** Ready and without a request; the head is the most recently used, so the tail ages out. */
    private final Deque<Member> idle = new ArrayDeque<>();
    private final Set<Member> busy = new LinkedHashSet<>();
    private final Deque<CompletableFuture<Member>> waiters = new ArrayDeque<>();
    private int live;
    private int starting;
    private int nextId = 1;
    private boolean closed;
    private int consecutiveFailures;
    private long launchNotBefore;
    private boolean retryScheduled;
    private long startedCount;
    private long failedCount;

    /** Bookkeeping for one ready upstream; guarded by the pool's lock. */
    static final class Member {
        final Upstream upstream;
        /** Launched by this pool (and so reaped by it), rather than admitted from outside. */
        final boolean launched;
        long idleSince;
        long requests;
        int inFlight;
        int maxInFlight;
        boolean gone;
        boolean retiring;

        Member(Upstream upstream, boolean launched) {
            this.upstream = upstream;
            this.launched = launched;
        }
    }

    private final Map<Upstream, Member> admitted = new HashMap<>();

    /** @param launcher starts upstreams on demand; null when upstreams are only {@link #admit admitted} */
    public WorkerPool(PoolConfig config, UpstreamLauncher launcher, Consumer<String> log) {
        this.config = config;
        this.launcher = launcher;
        this.log = log;
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "valve-pool-timer");
            t.setDaemon(true);
            return t;
        });
        long period = config.checkUnused().toMillis();
        timer.scheduleWithFixedDelay(this::reap, period, period, TimeUnit.MILLISECONDS);
    }

    /**
     * Launches {@code nMin} upstreams. The future completes when all are ready and fails as soon
     * as one of them fails, so a broken API is reported at once instead of after every attempt.
     */
    public CompletableFuture<Void> start() {
        int count;
        lock.lock();
        try {
            count = planLaunches();
        } finally {
            lock.unlock();
        }
        List<CompletableFuture<Upstream>> launches = launch(count);
        CompletableFuture<Void> ready = new CompletableFuture<>();
        for (CompletableFuture<Upstream> launch : launches) {
            launch.whenComplete((upstream, error) -> {
                if (error != null) {
                    ready.completeExceptionally(unwrap(error));
                }
            });
        }
        CompletableFuture.allOf(launches.toArray(CompletableFuture[]::new))
                .thenRun(() -> ready.complete(null));
        return ready;
    }

    /** Leases an idle upstream if one is free and nobody waits before us; null otherwise. */
    public Lease tryAcquire() {
        lock.lock();
        try {
            if (closed || !waiters.isEmpty() || idle.isEmpty()) {
                return null;
            }
            Member member = idle.pollFirst();
            markBusy(member);
            return new Lease(this, member);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Leases an upstream, waiting in FIFO order for up to {@code queueTimeout}.
     *
     * @throws PoolException when the queue is full, the wait timed out, no upstream can be
     *                       started, or the pool is closing
     */
    public Lease acquire() throws PoolException {
        CompletableFuture<Member> waiter = new CompletableFuture<>();
        int toLaunch;
        lock.lock();
        try {
            if (closed) {
                throw new PoolException(Reason.CLOSED, "the server is shutting down");
            }
            if (waiters.isEmpty() && !idle.isEmpty()) {
                Member member = idle.pollFirst();
                markBusy(member);
                return new Lease(this, member);
            }
            if (waiters.size() >= config.queueMax()) {
                throw new PoolException(Reason.QUEUE_FULL,
                        "all workers are busy and " + waiters.size() + " requests are waiting");
            }
            waiters.addLast(waiter);
            toLaunch = planLaunches();
        } finally {
            lock.unlock();
        }
        launch(toLaunch);
        return new Lease(this, await(waiter));
    }

    private Member await(CompletableFuture<Member> waiter) throws PoolException {
        try {
            return waiter.get(config.queueTimeout().toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            throw asPoolException(e.getCause());
        } catch (TimeoutException | InterruptedException e) {
            boolean interrupted = e instanceof InterruptedException;
            lock.lock();
            try {
                if (waiters.remove(waiter)) {
                    if (interrupted) {
                        Thread.currentThread().interrupt();
                        throw new PoolException(Reason.CLOSED, "the request was abandoned");
                    }
                    throw new PoolException(Reason.QUEUE_TIMEOUT, "no worker became free within "
                            + config.queueTimeout().toMillis() + " ms");
                }
            } finally {
                lock.unlock();
            }
            // Completed while we were giving up: the hand-off happened, so the lease is ours.
            try {
                return waiter.join();
            } catch (CompletionException ce) {
                throw asPoolException(ce.getCause());
            }
        }
    }

    private static PoolException asPoolException(Throwable cause) {
        return cause instanceof PoolException pe
                ? pe
                : new PoolException(Reason.NO_UPSTREAM, String.valueOf(cause));
    }

    /** Called once per lease by {@link Lease}. */
    void giveBack(Member member, boolean discard) {
        Upstream toStop = null;
        int toLaunch;
        lock.lock();
        try {
            member.inFlight--;
            busy.remove(member);
            if (discard || member.gone || member.retiring || !member.upstream.isAlive()) {
                if (!member.gone) {
                    member.gone = true;
                    live--;
                }
                admitted.remove(member.upstream);
                if (discard || !member.retiring) {
                    toStop = member.upstream;
                }
            } else {
                consecutiveFailures = 0;
                if (closed) {
                    idle.addFirst(member);
                } else {
                    handOff(member);
                }
            }
            if (busy.isEmpty()) {
                allIdle.signalAll();
            }
            toLaunch = planLaunches();
        } finally {
            lock.unlock();
        }
        if (toStop != null) {
            stopLater(toStop, "discarded after a failed request");
        }
        launch(toLaunch);
    }

    private void onDeath(Member member) {
        int toLaunch;
        lock.lock();
        try {
            if (member.gone) {
                return;
            }
            member.gone = true;
            live--;
            idle.remove(member);
            if (!closed) {
                recordFailure();
                log.accept(member.upstream.name() + " (pid " + member.upstream.pid() + ") exited");
            }
            toLaunch = planLaunches();
        } finally {
            lock.unlock();
        }
        launch(toLaunch);
    }

    /** Gives a ready upstream to the longest waiter, or parks it as idle. Lock held. */
    private void handOff(Member member) {
        CompletableFuture<Member> waiter = waiters.pollFirst();
        if (waiter != null) {
            markBusy(member);
            waiter.complete(member);
        } else {
            member.idleSince = System.nanoTime();
            idle.addFirst(member);
        }
    }

    private void markBusy(Member member) {
        busy.add(member);
        member.requests++;
        member.inFlight++;
        member.maxInFlight = Math.max(member.maxInFlight, member.inFlight);
    }

    /**
     * Decides how many upstreams to launch now and counts them as starting. Lock held; the caller
     * calls {@link #launch(int)} with the result after unlocking.
     */
    private int planLaunches() {
        if (closed || launcher == null) {
            return 0;
        }
        int coming = live + starting;
        // One spare when every worker is busy: the next request then finds a worker already
        // starting instead of waiting a whole R start-up (about half a second) behind the others.
        int spare = idle.isEmpty() && live > 0 ? 1 : 0;
        int needed = Math.max(config.nMin() - coming, waiters.size() + spare - starting);
        int count = Math.min(needed, config.nMax() - coming);
        if (count <= 0) {
            return 0;
        }
        long wait = launchNotBefore - System.nanoTime();
        if (wait > 0) {
            if (!retryScheduled) {
                retryScheduled = true;
                timer.schedule(this::retryLaunches, wait, TimeUnit.NANOSECONDS);
            }
            return 0;
        }
        starting += count;
        return count;
    }

    private void retryLaunches() {
        int toLaunch;
        lock.lock();
        try {
            retryScheduled = false;
            toLaunch = planLaunches();
        } finally {
            lock.unlock();
        }
        launch(toLaunch);
    }

    private List<CompletableFuture<Upstream>> launch(int count) {
        List<CompletableFuture<Upstream>> launches = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            int id;
            lock.lock();
            try {
                id = nextId++;
            } finally {
                lock.unlock();
            }
            CompletableFuture<Upstream> launch;
            try {
                launch = launcher.launch(id);
            } catch (RuntimeException e) {
                launch = CompletableFuture.failedFuture(e);
            }
            // The pool has taken the upstream in only once onLaunched ran: callers wait for that.
            launches.add(launch.whenComplete(this::onLaunched));
        }
        return launches;
    }

    private void onLaunched(Upstream upstream, Throwable error) {
        Upstream toStop = null;
        int toLaunch;
        lock.lock();
        try {
            starting--;
            if (error != null) {
                failedCount++;
                Throwable cause = unwrap(error);
                recordFailure();
                log.accept("a worker failed to start: " + cause.getMessage());
                if (live == 0 && starting == 0) {
                    failWaiters(new PoolException(Reason.NO_UPSTREAM,
                            "no worker could be started: " + cause.getMessage()));
                }
            } else if (closed) {
                toStop = upstream;
            } else {
                startedCount++;
                live++;
                Member member = new Member(upstream, true);
                upstream.onDeath(() -> onDeath(member));
                handOff(member);
            }
            toLaunch = planLaunches();
        } finally {
            lock.unlock();
        }
        if (toStop != null) {
            stopLater(toStop, "started after shutdown");
        }
        launch(toLaunch);
    }

    private void recordFailure() {
        consecutiveFailures++;
        long delay = consecutiveFailures <= 1
                ? 0
                : Math.min(BACKOFF_MAX.toNanos(),
                        BACKOFF_BASE.toNanos() << Math.min(consecutiveFailures - 2, 20));
        launchNotBefore = System.nanoTime() + delay;
    }

    private void failWaiters(PoolException error) {
        CompletableFuture<Member> waiter;
        while ((waiter = waiters.pollFirst()) != null) {
            waiter.completeExceptionally(error);
        }
    }

    /** Stops upstreams idle for longer than {@code maxAge}, oldest first, down to {@code nMin}. */
    private void reap() {
        List<Upstream> expired = new ArrayList<>();
        int toLaunch;
        lock.lock();
        try {
            long cutoff = System.nanoTime() - config.maxAge().toNanos();
            while (live > config.nMin() && !idle.isEmpty() && idle.peekLast().launched
                    && idle.peekLast().idleSince - cutoff < 0) {
                Member member = idle.pollLast();
                member.gone = true;
                live--;
                expired.add(member.upstream);
            }
            toLaunch = planLaunches();
        } finally {
            lock.unlock();
        }
        for (Upstream upstream : expired) {
            stopLater(upstream, "idle for more than " + config.maxAge().toSeconds() + " s");
        }
        launch(toLaunch);
    }

    private void stopLater(Upstream upstream, String why) {
        log.accept("stopping " + upstream.name() + " (pid " + upstream.pid() + "): " + why);
        Thread.ofVirtual().name("valve-stop-" + upstream.name()).start(() -> upstream.stop(STOP_GRACE));
    }

    /**
     * Adds an upstream that is managed from outside (a remote pod): it takes requests at once and
     * is never reaped; it leaves through {@link #retire(Upstream)} or when a request on it fails.
     */
    public void admit(Upstream upstream) {
        lock.lock();
        try {
            if (closed || admitted.containsKey(upstream)) {
                return;
            }
            Member member = new Member(upstream, false);
            admitted.put(upstream, member);
            live++;
            startedCount++;
            handOff(member);
        } finally {
            lock.unlock();
        }
    }

    /** Removes an admitted upstream: at once when idle, after its request when busy. */
    public void retire(Upstream upstream) {
        lock.lock();
        try {
            Member member = admitted.get(upstream);
            if (member == null || member.gone) {
                return;
            }
            if (idle.remove(member)) {
                member.gone = true;
                live--;
                admitted.remove(upstream);
            } else {
                member.retiring = true;
            }
        } finally {
            lock.unlock();
        }
    }

    public PoolStatus status() {
        lock.lock();
        try {
            List<PoolStatus.UpstreamStatus> upstreams = new ArrayList<>();
            for (Member member : busy) {
                if (!member.gone) {
                    upstreams.add(describe(member, true));
                }
            }
            for (Member member : idle) {
                upstreams.add(describe(member, false));
            }
            int busyLive = upstreams.size() - idle.size();
            return new PoolStatus(starting, idle.size(), busyLive, waiters.size(), startedCount,
                    failedCount, List.copyOf(upstreams));
        } finally {
            lock.unlock();
        }
    }

    private static PoolStatus.UpstreamStatus describe(Member member, boolean busy) {
        Upstream upstream = member.upstream;
        return new PoolStatus.UpstreamStatus(upstream.name(), upstream.pid(), upstream.port(), busy,
                member.requests, member.maxInFlight);
    }

    /**
     * Refuses new requests, lets in-flight ones finish for up to {@code grace}, then stops every
     * upstream and waits for them to exit.
     */
    public void close(Duration grace) {
        List<Upstream> all = new ArrayList<>();
        lock.lock();
        try {
            if (!closed) {
                closed = true;
                failWaiters(new PoolException(Reason.CLOSED, "the server is shutting down"));
            }
            long remaining = grace.toNanos();
            while (!busy.isEmpty() && remaining > 0) {
                remaining = allIdle.awaitNanos(remaining);
            }
            for (Member member : idle) {
                member.gone = true;
                all.add(member.upstream);
            }
            for (Member member : busy) {
                member.gone = true;
                all.add(member.upstream);
            }
            idle.clear();
            live = 0;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            lock.unlock();
        }
        timer.shutdownNow();
        List<Thread> stoppers = new ArrayList<>();
        for (Upstream upstream : all) {
            stoppers.add(Thread.ofVirtual().start(() -> upstream.stop(STOP_GRACE)));
        }
        if (launcher != null) {
            launcher.close();
        }
        for (Thread stopper : stoppers) {
            try {
                stopper.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    @Override
    public void close() {
        close(Duration.ZERO);
    }

    private static Throwable unwrap(Throwable error) {
        return error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
    }
}
