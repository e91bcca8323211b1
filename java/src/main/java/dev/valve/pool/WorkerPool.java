package dev.valve.pool;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.LongSupplier;

import dev.valve.pool.PoolException.Reason;

/**
 * A pool of upstreams, each serving at most one request at a time, with a fair FIFO queue in
 * front of them.
 *
 * <p>Rules: an upstream that frees up goes straight to the longest-waiting request (never to a
 * newcomer); launches follow {@link Scaling}; idle upstreams are reused most recently used first,
 * and those older than {@code maxAge} are stopped down to {@code nMin}; dead upstreams leave the
 * pool at once and are replaced when needed. A launched upstream that reached its
 * {@link Recycling} limit leaves after its request; it no longer counts for {@link Scaling}, so
 * its replacement starts while it finishes when requests would otherwise wait. A
 * {@link #reload() reload} launches a new generation of upstreams; the old ones serve until the
 * first new one is ready, then leave (idle ones at once, busy ones after their request). Launch
 * failures and crashes go through {@link Backoff}, so a broken API never makes the engine spin.
 *
 * <p>For a Shiny app ({@link PoolConfig#servesSessions()}) an upstream is not leased per request:
 * it serves up to {@code maxSessions} sessions, each placed on the upstream with the fewest and
 * kept there by a token the client sends back ({@link #visit}); a session holds its place for
 * {@link #PLACEMENT_HOLD} after its first request, and then for as long as its WebSocket is open
 * ({@link Lease#keepPlace()}). A plumber API's WebSockets hold places the same way, without a cap.
 * An upstream with places open is never stopped as idle.
 *
 * <p>Upstreams come two ways. Launched ones belong to the pool: it watches their process, reaps
 * and stops them. {@link #admit Admitted} ones (remote pods) belong to whoever admitted them: the
 * pool only tells that owner when a request on one failed.
 *
 * <p>All state is guarded by one lock. Every locked section records what it decided in an
 * {@link Effects}, and {@link #apply} carries that out after the lock is released: nothing slow
 * (launching, stopping, calling out) ever happens under the lock.
 */
public final class WorkerPool implements AutoCloseable {
    private static final Duration BACKOFF_BASE = Duration.ofMillis(250);
    private static final Duration BACKOFF_MAX = Duration.ofSeconds(30);
    private static final Duration STOP_GRACE = Duration.ofSeconds(3);
    private static final long MIB = 1024 * 1024;
    /**
     * How long a new session's place is kept for its WebSocket to arrive: a browser opens it
     * right after the page, and a client that never does (curl, a crawler) frees the place after.
     */
    static final Duration PLACEMENT_HOLD = Duration.ofSeconds(30);
    /** Beyond a stop's own bound (grace, then as long again after SIGKILL), for a loaded machine. */
    private static final Duration STOP_MARGIN = Duration.ofSeconds(2);

    /**
     * Stopping blocks (SIGTERM, wait, SIGKILL, wait), so it runs on platform threads: a process
     * wait on a virtual thread can pin its carrier ({@code Process.waitFor} in JDK 21), and a few
     * pinned carriers stall every request. Daemon threads, shared by the JVM's pools, never keep
     * it alive; idle ones end after a minute.
     */
    private static final ExecutorService STOPPERS = Executors.newCachedThreadPool(
            Thread.ofPlatform().daemon().name("valve-stop-", 1).factory());

    private final PoolConfig config;
    private final Scaling scaling;
    private final UpstreamLauncher launcher;
    private final Consumer<String> log;
    private final LongSupplier nanoTime;
    private final ScheduledExecutorService timer;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition allIdle = lock.newCondition();
    /** Ready and without a request; the head is the most recently used, so the tail ages out. */
    private final Deque<Member> idle = new ArrayDeque<>();
    private final Set<Member> busy = new LinkedHashSet<>();
    private final Deque<Waiter> waiters = new ArrayDeque<>();
    private final Map<Upstream, Member> admitted = new HashMap<>();
    /** Launched members by {@link Member#token}, for sessions coming back to their upstream. */
    private final Map<String, Member> byToken = new HashMap<>();
    /** Shared requests in flight ({@link #visit}), which a graceful close waits for like busy members. */
    private int visiting;
    /** Left since the last locked section ended; see {@link #onDeparture}. */
    private final List<Upstream> departed = new ArrayList<>();
    private volatile Consumer<Upstream> departureListener = upstream -> {
    };
    private final Backoff backoff;
    /** Members in the pool, idle or busy; each is counted out exactly once, by {@link #leave}. */
    private int live;
    /** Members of {@code live} that leave once their request is done ({@link Member#leaving}). */
    private int outgoing;
    private int starting;
    private int nextId = 1;
    private boolean closed;
    private boolean retryScheduled;
    /** A look for room for the waiting new sessions is due when the earliest held place lapses. */
    private boolean refillScheduled;
    /** What launches get now; a reload increments it. */
    private int generation;
    /** Members older than this were replaced by a reload that succeeded: late arrivals among them are stopped. */
    private int oldestKept;
    /** While a reload waits for its first new upstream: every member is then of an older generation. */
    private CompletableFuture<Void> reloading;
    /** Upstreams a pending reload replaces: it launches that many, however few requests need them. */
    private int reloadTarget;
    private long startedCount;
    private long failedCount;
    /** Launched members that left, by {@link ExitReason#ordinal()}. */
    private final long[] exits = new long[ExitReason.values().length];

    /** Bookkeeping for one ready upstream; guarded by the pool's lock. */
    static final class Member {
        final Upstream upstream;
        /** Launched by this pool (and so reaped and stopped by it), rather than admitted. */
        final boolean launched;
        /** Tells an admitted upstream's owner that a request on it failed; null when launched. */
        final Runnable onFailure;
        long idleSince;
        long requests;
        /** Requests after which it is recycled; 0 for never. */
        long requestLimit;
        /** The pool's generation when it was launched. */
        int generation;
        int inFlight;
        int maxInFlight;
        /** Out of the pool: never parked, handed out or counted again. */
        boolean gone;
        /** Why it leaves once its request is done; null while it stays. */
        String leaving;
        /** Why it leaves, for the metrics; set with {@link #leaving}. */
        ExitReason leavingReason;
        /** What a session's client sends back to reach this member again; unguessable, so not a worker's name. */
        final String token = randomId();
        /** Open WebSocket connections ({@link Place}s). */
        int sessions;
        /** Shared requests in flight. */
        int visits;
        /** When each new session's place lapses unless its WebSocket takes it, by the session's id, earliest first. */
        final Map<String, Long> holds = new LinkedHashMap<>(4);

        Member(Upstream upstream, boolean launched, Runnable onFailure) {
            this.upstream = upstream;
            this.launched = launched;
            this.onFailure = onFailure;
        }

        /** Sessions counted against {@code maxSessions}: open ones and those whose WebSocket is still to come. */
        int load(long now) {
            holds.values().removeIf(expiry -> expiry - now < 0);
            return sessions + holds.size();
        }
    }

    /**
     * A request waiting in the queue. For a new session: the session's id, and whether it needs
     * room (a page or a WebSocket) or only a worker (anything else a client without a session asks).
     */
    private static final class Waiter extends CompletableFuture<Member> {
        final String session;
        final boolean reserve;

        Waiter(String session, boolean reserve) {
            this.session = session;
            this.reserve = reserve;
        }
    }

    /** What a locked section decided; carried out by {@link #apply} once the lock is released. */
    private static final class Effects {
        int firstId;
        int launches;
        int generation;
        /** New members whose process exit must be watched. */
        final List<Member> watch = new ArrayList<>(1);
        final List<Stop> stops = new ArrayList<>(1);
        final List<Runnable> failures = new ArrayList<>(1);
        /** Completes or fails a reload's future, outside the lock, where its callers' callbacks may run. */
        final List<Runnable> reloadOutcomes = new ArrayList<>(0);
        /** Upstreams that left the pool, for whoever keeps state per upstream. */
        final List<Upstream> departed = new ArrayList<>(1);
    }

    private record Stop(Upstream upstream, String why) {
    }

    /** @param launcher starts upstreams on demand; null when upstreams are only {@link #admit admitted} */
    public WorkerPool(PoolConfig config, UpstreamLauncher launcher, Consumer<String> log) {
        this(config, launcher, log, System::nanoTime);
    }

    /** @param nanoTime the clock for idle ages and backoff, so tests can move it */
    WorkerPool(PoolConfig config, UpstreamLauncher launcher, Consumer<String> log, LongSupplier nanoTime) {
        this.config = config;
        this.scaling = new Scaling(config.nMin(), config.nMax());
        this.launcher = launcher;
        this.log = log;
        this.nanoTime = nanoTime;
        this.backoff = new Backoff(BACKOFF_BASE, BACKOFF_MAX, nanoTime);
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
        if (launcher != null) {
            launcher.prepare();
        }
        List<CompletableFuture<Upstream>> launches = update(effects -> {
        });
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

    /**
     * Leases an upstream, waiting in FIFO order for up to {@code queueTimeout}. A thread
     * interrupted while it waits (or before) leaves the queue, keeps its interrupt and gets
     * {@link Reason#CLOSED}: that is how a request whose client went away is dropped.
     *
     * @throws PoolException when the queue is full, the wait timed out, no upstream can be
     *                       started, the pool is closing, or the thread was interrupted
     */
    public Lease acquire() throws PoolException {
        return acquire(() -> {
        });
    }

    /**
     * As {@link #acquire()}; {@code whenQueued} runs on this thread, before it waits, only if the
     * request has to wait in the queue (the proxy then watches for the client hanging up).
     */
    public Lease acquire(Runnable whenQueued) throws PoolException {
        return lease(false, whenQueued, new Waiter(null, false), waiter -> {
            Member member = waiters.isEmpty() ? takeIdle() : null;
            if (member != null) {
                markBusy(member);
                return new Choice(member, null, false, null);
            }
            if (waiters.size() >= config.queueMax()) {
                return new Choice(null, new PoolException(Reason.QUEUE_FULL,
                        "all workers are busy and " + waiters.size() + " requests are waiting"), false, null);
            }
            waiters.addLast(waiter);
            return new Choice(null, null, false, null);
        });
    }

    /**
     * Session mode: a shared lease on the upstream of the session that {@code token} names, or,
     * when there is none (a new session, or its upstream is gone), on the one with the fewest
     * sessions that has room, waiting like {@link #acquire} when every one is full.
     *
     * @param tokens  what the client sent back of {@link Lease#sessionToken()}s (of this pool's or
     *                others'); none for a new session
     * @param reserve a new session needs room ({@code max_sessions}) and holds it for its
     *                WebSocket: its page or its WebSocket. Any other request without a session
     *                (a probe, a crawler) goes to the least loaded worker and holds nothing.
     */
    public Lease visit(List<String> tokens, boolean reserve, Runnable whenQueued) throws PoolException {
        return lease(true, whenQueued, new Waiter(randomId(), reserve), waiter -> {
            for (String token : tokens) {
                int dot = token.indexOf('.');
                Member known = byToken.get(dot < 0 ? token : token.substring(0, dot));
                if (known != null && !known.gone && known.leaving == null && isAlive(known)) {
                    startVisit(known);
                    return new Choice(known, null, false, dot < 0 ? null : token.substring(dot + 1));
                }
            }
            Member member = waiters.isEmpty() ? roomiest(reserve) : null;
            if (member != null) {
                if (reserve) {
                    hold(member, waiter.session);
                }
                startVisit(member);
                return new Choice(member, null, true, waiter.session);
            }
            if (waiters.size() >= config.queueMax()) {
                return new Choice(null, new PoolException(Reason.QUEUE_FULL, "every worker has max_sessions ("
                        + config.maxSessions() + ") sessions and " + waiters.size() + " new sessions are waiting"),
                        true, null);
            }
            waiters.addLast(waiter);
            scheduleRefill();
            return new Choice(null, null, true, waiter.session);
        });
    }

    /**
     * What a lease's locked section decided: a member now, a refusal, or (neither) a wait in the
     * queue; for a session, whether it is new and its id.
     */
    private record Choice(Member member, PoolException refusal, boolean placed, String session) {
    }

    /**
     * The story of every lease: {@code choose} decides under the lock (and may queue the waiter it
     * is given), launches are planned, and outside the lock the caller gets its member or waits.
     */
    private Lease lease(boolean shared, Runnable whenQueued, Waiter waiter, Function<Waiter, Choice> choose)
            throws PoolException {
        Effects effects = new Effects();
        Choice choice;
        lock.lock();
        try {
            if (closed) {
                choice = new Choice(null, new PoolException(Reason.CLOSED, "the server is shutting down"), false, null);
            } else {
                choice = choose.apply(waiter);
                planLaunches(effects);
                takeDeparted(effects);
            }
        } finally {
            lock.unlock();
        }
        apply(effects);
        if (choice.refusal() != null) {
            throw choice.refusal();
        }
        if (choice.member() != null) {
            return new Lease(this, choice.member(), shared, choice.placed(), choice.session());
        }
        whenQueued.run();
        Member member = await(waiter, shared ? this::endVisit : abandoned -> giveBack(abandoned, null));
        return new Lease(this, member, shared, choice.placed(), choice.session());
    }

    /** A worker's token or a session's id in the session cookie: 16 hex digits, not guessable from a count. */
    private static String randomId() {
        return Long.toHexString(ThreadLocalRandom.current().nextLong() | Long.MIN_VALUE);
    }

    /**
     * The live member with the fewest sessions, most recently used first among equals; with
     * {@code room}, only one below {@code max_sessions}. Lock held.
     */
    private Member roomiest(boolean room) {
        long now = nanoTime.getAsLong();
        Member best = null;
        int bestLoad = room ? config.maxSessions() : Integer.MAX_VALUE;
        for (Member member : List.copyOf(idle)) {
            if (!isAlive(member)) {
                died(member);
            } else if (member.leaving == null && member.load(now) < bestLoad) {
                best = member;
                bestLoad = member.load(now);
            }
        }
        return best;
    }

    /** Counts a new session on a member until its WebSocket takes the place, or for {@link #PLACEMENT_HOLD}. Lock held. */
    private void hold(Member member, String session) {
        member.holds.put(session, nanoTime.getAsLong() + PLACEMENT_HOLD.toNanos());
    }

    /**
     * New sessions wait: when the earliest place held for a WebSocket lapses, room may open up
     * before any session ends. Lock held.
     */
    private void scheduleRefill() {
        if (refillScheduled || closed) {
            return;
        }
        long now = nanoTime.getAsLong();
        long earliest = Long.MAX_VALUE;
        for (Member member : idle) {
            member.load(now);
            for (long expiry : member.holds.values()) {
                earliest = Math.min(earliest, expiry - now);
            }
        }
        if (earliest != Long.MAX_VALUE) {
            refillScheduled = true;
            timer.schedule(() -> update(effects -> {
                refillScheduled = false;
                List.copyOf(idle).forEach(this::fillPlaces);
                if (!waiters.isEmpty()) {
                    scheduleRefill();
                }
            }), Math.max(0, earliest) + 1, TimeUnit.NANOSECONDS);
        }
    }

    private void startVisit(Member member) {
        member.visits++;
        member.requests++;
        visiting++;
    }

    /** A shared lease ended. */
    void endVisit(Member member) {
        update(effects -> visitEnded(member, effects));
    }

    /** A shared lease ended with its member refusing the connection: the member leaves, and is stopped. */
    void endVisitUnreachable(Member member) {
        update(effects -> {
            visitEnded(member, effects);
            if (!member.gone) {
                idle.remove(member);
                leave(member, ExitReason.CRASH);
                effects.stops.add(new Stop(member.upstream, "refused a connection"));
            }
        });
    }

    /** Lock held. */
    private void visitEnded(Member member, Effects effects) {
        member.visits--;
        visiting--;
        if (member.visits == 0) {
            member.idleSince = nanoTime.getAsLong();
        }
        leaveWhenDone(member, effects);
        if (busy.isEmpty() && visiting == 0) {
            allIdle.signalAll();
        }
    }

    /**
     * A request on {@code member} became a WebSocket: it holds a place there from now on, which
     * takes over the place held for its session since its page, if any.
     */
    Place keepPlace(Member member, boolean shared, String session) {
        update(effects -> {
            member.sessions++;
            if (session != null) {
                member.holds.remove(session);
            }
        });
        if (shared) {
            endVisit(member);
        } else {
            giveBack(member, null);
        }
        return new Place(this, member);
    }

    /** A WebSocket on {@code member} closed: its place may go to a new session. */
    void leavePlace(Member member) {
        update(effects -> {
            member.sessions--;
            if (member.sessions == 0) {
                member.idleSince = nanoTime.getAsLong();
            }
            leaveWhenDone(member, effects);
            if (config.servesSessions() && !member.gone && member.leaving == null) {
                fillPlaces(member);
            }
        });
    }

    /** Session mode: gives waiting new sessions places on {@code member} while it has room. Lock held. */
    private void fillPlaces(Member member) {
        long now = nanoTime.getAsLong();
        Waiter waiter;
        while ((waiter = waiters.peekFirst()) != null && (!waiter.reserve || member.load(now) < config.maxSessions())) {
            waiters.pollFirst();
            if (waiter.reserve) {
                hold(member, waiter.session);
            }
            startVisit(member);
            waiter.complete(member);
        }
    }

    /** The most recently used idle member still alive; dead ones met on the way leave. Lock held. */
    private Member takeIdle() {
        Member found = null;
        List<Member> dead = null;
        for (Member member : idle) {
            if (!isAlive(member)) {
                dead = dead == null ? new ArrayList<>(1) : dead;
                dead.add(member);
            } else if (member.leaving == null) {
                found = member;
                break;
            }
        }
        if (dead != null) {
            // Their exit callbacks have not run yet; they will find the members gone.
            dead.forEach(this::died);
        }
        if (found != null) {
            idle.remove(found);
        }
        return found;
    }

    /** @param undo hands back a member that came just as the wait was given up */
    private Member await(Waiter waiter, Consumer<Member> undo) throws PoolException {
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
            // Completed while we were giving up: the hand-off happened.
            Member member;
            try {
                member = waiter.join();
            } catch (CompletionException ce) {
                throw asPoolException(ce.getCause());
            }
            if (interrupted) {
                // Nobody will use it: it goes on to the next waiter, and the caller learns as
                // in any other abandonment.
                undo.accept(member);
                Thread.currentThread().interrupt();
                throw new PoolException(Reason.CLOSED, "the request was abandoned");
            }
            return member;
        }
    }

    private static PoolException asPoolException(Throwable cause) {
        return cause instanceof PoolException pe
                ? pe
                : new PoolException(Reason.NO_UPSTREAM, String.valueOf(cause));
    }

    /**
     * Called once per lease by {@link Lease}.
     *
     * @param discard why the member must leave, or null when it may take the next request
     */
    void giveBack(Member member, ExitReason discard) {
        // A file read, however small: never under the lock.
        long resident = discard == null && member.launched && config.recycling().checksMemory()
                ? member.upstream.process().map(ManagedProcess::residentBytes).orElse(-1L)
                : -1;
        update(effects -> {
            member.inFlight--;
            busy.remove(member);
            // A gone member is already out: its process exited, or close() took it.
            if (!member.gone) {
                takeBack(member, discard, resident, effects);
            }
            if (busy.isEmpty()) {
                allIdle.signalAll();
            }
        });
    }

    private void takeBack(Member member, ExitReason discard, long resident, Effects effects) {
        if (!isAlive(member)) {
            died(member);
        } else if (discard != null) {
            leave(member, discard);
            if (member.launched) {
                effects.stops.add(new Stop(member.upstream, "discarded after a failed request"));
            } else {
                effects.failures.add(member.onFailure);
            }
        } else {
            backoff.success();
            if (member.leaving == null && config.recycling().overMemory(resident)) {
                markLeaving(member, ExitReason.RECYCLE, "recycled: " + resident / MIB
                        + " MiB resident, above max_worker_memory (" + config.recycling().maxMemoryBytes() / MIB + " MiB)");
            }
            if (member.leaving != null) {
                member.idleSince = nanoTime.getAsLong();
                idle.addFirst(member);
                leaveWhenDone(member, effects);
            } else {
                handOff(member);
            }
        }
    }

    /**
     * A member marked leaving goes once nothing uses it: no request in flight and, in a plumber
     * app, no WebSocket open (its clients may not reconnect by themselves). A Shiny app's
     * sessions are not waited for: Shiny's page reconnects them to a worker that stays. Until
     * then it stays listed as idle, where no new request or session is given it. Lock held.
     */
    private void leaveWhenDone(Member member, Effects effects) {
        if (member.leaving == null || member.gone || busy.contains(member) || member.visits > 0
                || (!config.servesSessions() && member.sessions > 0)) {
            return;
        }
        idle.remove(member);
        leaveAfterRequest(member, member.leavingReason, member.leaving, effects);
    }

    /** A member that answered leaves for good, stopped if launched. Lock held. */
    private void leaveAfterRequest(Member member, ExitReason reason, String why, Effects effects) {
        leave(member, reason);
        if (member.launched) {
            effects.stops.add(new Stop(member.upstream, why));
        }
    }

    /**
     * Marks a member to leave once its request is done. From now on it counts for no
     * {@link Scaling} rule, so its replacement can start while it finishes. Lock held.
     */
    private void markLeaving(Member member, ExitReason reason, String why) {
        if (member.leaving == null) {
            member.leaving = why;
            member.leavingReason = reason;
            outgoing++;
        }
    }

    /** The exit callback of a member's process. */
    private void exited(Member member) {
        update(effects -> {
            if (!member.gone) {
                died(member);
            }
        });
    }

    /** A member's process exited on its own. Lock held. */
    private void died(Member member) {
        leave(member, ExitReason.CRASH);
        idle.remove(member);
        if (!closed) {
            backoff.failure();
            log.accept(member.upstream.name() + " (pid " + pid(member.upstream) + ") exited");
        }
    }

    /** Takes a member out of the pool's counts; the only place {@code live} goes down. Lock held. */
    private void leave(Member member, ExitReason reason) {
        member.gone = true;
        live--;
        if (member.leaving != null) {
            outgoing--;
        }
        if (member.launched) {
            exits[reason.ordinal()]++;
        }
        departed.add(member.upstream);
        byToken.remove(member.token, member);
        if (!member.launched) {
            admitted.remove(member.upstream, member);
        }
    }

    /** Gives a ready upstream to the longest waiter, or parks it as idle. Lock held. */
    private void handOff(Member member) {
        if (config.servesSessions()) {
            member.idleSince = nanoTime.getAsLong();
            idle.addFirst(member);
            fillPlaces(member);
            return;
        }
        Waiter waiter = waiters.pollFirst();
        if (waiter != null) {
            markBusy(member);
            waiter.complete(member);
        } else {
            member.idleSince = nanoTime.getAsLong();
            idle.addFirst(member);
        }
    }

    private void markBusy(Member member) {
        busy.add(member);
        member.requests++;
        member.inFlight++;
        member.maxInFlight = Math.max(member.maxInFlight, member.inFlight);
        if (member.requestLimit > 0 && member.requests >= member.requestLimit) {
            markLeaving(member, ExitReason.RECYCLE, "recycled after " + member.requests + " requests (max_requests)");
        }
    }

    private static boolean isAlive(Member member) {
        return member.upstream.process().map(ManagedProcess::isAlive).orElse(true);
    }

    private static long pid(Upstream upstream) {
        return upstream.process().map(ManagedProcess::pid).orElse(-1L);
    }

    /**
     * Runs one locked section, plans launches after it, and applies what both decided once the
     * lock is released. Returns the launches, which complete after the pool took them in.
     */
    private List<CompletableFuture<Upstream>> update(Consumer<Effects> change) {
        Effects effects = new Effects();
        lock.lock();
        try {
            change.accept(effects);
            planLaunches(effects);
            takeDeparted(effects);
        } finally {
            lock.unlock();
        }
        return apply(effects);
    }

    /** Counts the launches {@link Scaling} and {@link Backoff} allow now as starting. Lock held. */
    private void planLaunches(Effects effects) {
        if (closed || launcher == null) {
            return;
        }
        // While a reload is pending every member is old: none counts as staying.
        int staying = reloading != null ? 0 : live - outgoing;
        Scaling rule = reloading != null ? new Scaling(Math.min(config.nMax(), Math.max(config.nMin(), reloadTarget)),
                config.nMax()) : scaling;
        int available = reloading != null ? 0 : withRoom();
        int count = rule.launches(staying, live - staying, starting, waiters.size(), available);
        if (count <= 0) {
            return;
        }
        long wait = backoff.remaining();
        if (wait > 0) {
            if (!retryScheduled) {
                retryScheduled = true;
                timer.schedule(this::retryLaunches, wait, TimeUnit.NANOSECONDS);
            }
            return;
        }
        starting += count;
        effects.firstId = nextId;
        effects.launches = count;
        effects.generation = generation;
        nextId += count;
    }

    /** Idle members that could take a request (in session mode: a new session) now. Lock held. */
    private int withRoom() {
        long now = nanoTime.getAsLong();
        int count = 0;
        for (Member member : idle) {
            if (member.leaving == null && (!config.servesSessions() || member.load(now) < config.maxSessions())) {
                count++;
            }
        }
        return count;
    }

    private void retryLaunches() {
        update(effects -> retryScheduled = false);
    }

    /** Moves the members that left since the last locked section into its effects. Lock held. */
    private void takeDeparted(Effects effects) {
        effects.departed.addAll(departed);
        departed.clear();
    }

    /**
     * Registers what to run, outside the lock, for each upstream that leaves the pool (exits, is
     * reaped, discarded, retired or stopped): state kept per upstream elsewhere can be dropped.
     */
    public void onDeparture(Consumer<Upstream> listener) {
        departureListener = listener;
    }

    /** The one place where what a locked section decided happens. Never called with the lock held. */
    private List<CompletableFuture<Upstream>> apply(Effects effects) {
        effects.departed.forEach(departureListener);
        for (Member member : effects.watch) {
            // Outside the lock: for a process that already exited, the callback runs right here.
            member.upstream.process().ifPresent(process -> process.onExit(() -> exited(member)));
        }
        for (Stop stop : effects.stops) {
            log.accept("stopping " + stop.upstream().name() + " (pid " + pid(stop.upstream()) + "): " + stop.why());
            stop(stop.upstream());
        }
        effects.reloadOutcomes.forEach(Runnable::run);
        for (Runnable failure : effects.failures) {
            try {
                failure.run();
            } catch (RuntimeException e) {
                log.accept("a failure callback failed: " + e);
            }
        }
        List<CompletableFuture<Upstream>> launches = new ArrayList<>(effects.launches);
        for (int i = 0; i < effects.launches; i++) {
            CompletableFuture<Upstream> launch;
            try {
                launch = launcher.launch(effects.firstId + i);
            } catch (RuntimeException e) {
                launch = CompletableFuture.failedFuture(e);
            }
            // The pool has taken the upstream in only once onLaunched ran: callers wait for that.
            int launchGeneration = effects.generation;
            launches.add(launch.whenComplete((upstream, error) -> onLaunched(upstream, error, launchGeneration)));
        }
        return launches;
    }

    private void onLaunched(Upstream upstream, Throwable error, int launchGeneration) {
        update(effects -> {
            starting--;
            if (error != null) {
                failedCount++;
                Throwable cause = unwrap(error);
                backoff.failure();
                log.accept("a worker failed to start: " + cause.getMessage());
                if (reloading != null && launchGeneration == generation) {
                    abandonReload(cause, effects);
                }
                if (live == 0 && starting == 0) {
                    failWaiters(new PoolException(Reason.NO_UPSTREAM,
                            "no worker could be started: " + cause.getMessage()));
                }
            } else if (closed) {
                effects.stops.add(new Stop(upstream, "started after shutdown"));
            } else if (launchGeneration < oldestKept) {
                effects.stops.add(new Stop(upstream, "started with the code a reload replaced"));
            } else if (upstream.process().isPresent() && !upstream.process().get().isAlive()) {
                // Answered its readiness probe, then died: like a crash, never parked or counted.
                failedCount++;
                backoff.failure();
                log.accept(upstream.name() + " (pid " + pid(upstream) + ") exited right after it became ready");
            } else {
                startedCount++;
                live++;
                Member member = new Member(upstream, true, null);
                byToken.put(member.token, member);
                member.requestLimit = config.recycling().requestLimit(ThreadLocalRandom.current());
                member.generation = launchGeneration;
                effects.watch.add(member);
                handOff(member);
                if (reloading != null && launchGeneration == generation) {
                    commitReload(effects);
                }
            }
        });
    }

    /**
     * Starts a new generation of upstreams, so that they run the API's current code; the old ones
     * keep serving until the first new one is ready, then leave: idle ones at once, busy ones
     * after their request, so no request fails. At least one new upstream starts (even in an
     * empty pool, to try the new code), and as many as were running. A reload asked for while
     * one is pending joins it: both end with the newest generation.
     *
     * @return completes once the first new upstream took requests; fails with the cause when the
     *         first new upstream failed to start, and then the old ones stay
     */
    public CompletableFuture<Void> reload() {
        if (launcher != null) {
            // Before any launch of the new generation is asked for.
            launcher.reload();
        }
        List<CompletableFuture<Void>> outcome = new ArrayList<>(1);
        update(effects -> {
            if (closed || launcher == null) {
                outcome.add(CompletableFuture.failedFuture(new PoolException(Reason.CLOSED,
                        closed ? "the server is shutting down" : "there are no launched workers to reload")));
                return;
            }
            generation++;
            reloadTarget = Math.max(1, live - outgoing);
            if (reloading == null) {
                reloading = new CompletableFuture<>();
            }
            outcome.add(reloading);
        });
        return outcome.get(0);
    }

    /** The first upstream of the newest generation is ready: every older one leaves. Lock held. */
    private void commitReload(Effects effects) {
        oldestKept = generation;
        for (Member member : List.copyOf(idle)) {
            if (member.launched && member.generation < generation) {
                markLeaving(member, ExitReason.RELOAD, "replaced by a reload");
                leaveWhenDone(member, effects);
            }
        }
        for (Member member : busy) {
            if (member.launched && !member.gone && member.generation < generation) {
                markLeaving(member, ExitReason.RELOAD, "replaced by a reload");
            }
        }
        CompletableFuture<Void> done = reloading;
        reloading = null;
        reloadTarget = 0;
        effects.reloadOutcomes.add(() -> done.complete(null));
    }

    /** The newest generation cannot start: the old upstreams stay, as current as before. Lock held. */
    private void abandonReload(Throwable cause, Effects effects) {
        CompletableFuture<Void> failed = reloading;
        reloading = null;
        reloadTarget = 0;
        effects.reloadOutcomes.add(() -> failed.completeExceptionally(cause));
    }

    private void failWaiters(PoolException error) {
        Waiter waiter;
        while ((waiter = waiters.pollFirst()) != null) {
            waiter.completeExceptionally(error);
        }
    }

    /**
     * Stops launched upstreams idle for longer than {@code maxAge}, least recently used first,
     * down to {@code nMin}. Idle means no request, no open WebSocket and no session waiting for one.
     */
    void reap() {
        update(effects -> {
            long now = nanoTime.getAsLong();
            long cutoff = now - config.maxAge().toNanos();
            for (Member member : new ArrayList<>(idle).reversed()) {
                if (live - outgoing <= config.nMin()) {
                    break;
                }
                if (member.launched && member.idleSince - cutoff < 0 && member.visits == 0 && member.load(now) == 0) {
                    idle.remove(member);
                    leave(member, ExitReason.IDLE_REAP);
                    effects.stops.add(new Stop(member.upstream,
                            "idle for more than " + config.maxAge().toSeconds() + " s"));
                }
            }
            if (config.servesSessions()) {
                // Places that lapsed meanwhile may let new sessions in.
                List.copyOf(idle).forEach(this::fillPlaces);
            }
        });
    }

    /** Stops a launched upstream's process on a platform thread; nothing to do for others. */
    private Future<?> stop(Upstream upstream) {
        return upstream.process().<Future<?>>map(process -> STOPPERS.submit(() -> {
            try {
                process.stop(STOP_GRACE);
            } catch (RuntimeException e) {
                log.accept("stopping " + upstream.name() + " failed: " + e);
            }
        })).orElse(CompletableFuture.completedFuture(null));
    }

    /**
     * Adds an upstream managed from outside (a remote pod): it takes requests at once and is
     * never reaped or stopped by the pool; it leaves through {@link #retire(Upstream)}, when its
     * process (if it has one) exits, or when a request on it fails, and then the pool runs
     * {@code onFailure} so its owner can act.
     */
    public void admit(Upstream upstream, Runnable onFailure) {
        update(effects -> {
            if (closed || admitted.containsKey(upstream)) {
                return;
            }
            Member member = new Member(upstream, false, onFailure);
            admitted.put(upstream, member);
            live++;
            startedCount++;
            effects.watch.add(member);
            handOff(member);
        });
    }

    /** Removes an admitted upstream: at once when idle, after its request when busy. */
    public void retire(Upstream upstream) {
        update(effects -> {
            Member member = admitted.get(upstream);
            if (member == null || member.gone) {
                return;
            }
            if (idle.remove(member)) {
                leave(member, ExitReason.STOP);
            } else {
                markLeaving(member, ExitReason.STOP, "retired");
            }
        });
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
            long now = nanoTime.getAsLong();
            int visited = 0;
            for (Member member : idle) {
                boolean inUse = member.visits > 0 || member.sessions > 0;
                visited += member.visits > 0 ? 1 : 0;
                upstreams.add(inUse ? describe(member, member.visits > 0)
                        : describe(member, false).idleFor(now - member.idleSince));
            }
            int busyLive = upstreams.size() - idle.size() + visited;
            Map<String, Long> exitsByReason = new LinkedHashMap<>();
            for (ExitReason reason : ExitReason.values()) {
                exitsByReason.put(reason.label, exits[reason.ordinal()]);
            }
            boolean canLaunch = launcher != null && !closed && live + starting < config.nMax()
                    && backoff.remaining() <= 0;
            return new PoolStatus(starting, idle.size() - visited, busyLive, waiters.size(), startedCount,
                    failedCount, List.copyOf(upstreams), exitsByReason, canLaunch);
        } finally {
            lock.unlock();
        }
    }

    private static PoolStatus.UpstreamStatus describe(Member member, boolean busy) {
        Upstream upstream = member.upstream;
        return new PoolStatus.UpstreamStatus(upstream.name(), pid(upstream), upstream.port(), busy,
                member.requests, member.maxInFlight, 0, member.sessions);
    }

    /**
     * Refuses new requests, lets in-flight ones finish for up to {@code grace}, then stops every
     * launched upstream and waits a bounded time for them to exit. Interrupted, it stops waiting
     * for requests and for exits, but still stops everything, and keeps the interrupt.
     */
    public void close(Duration grace) {
        List<Member> members = new ArrayList<>();
        List<Upstream> left;
        CompletableFuture<Void> pendingReload = null;
        boolean interrupted = false;
        lock.lock();
        try {
            if (!closed) {
                closed = true;
                failWaiters(new PoolException(Reason.CLOSED, "the server is shutting down"));
                pendingReload = reloading;
                reloading = null;
            }
            try {
                long remaining = grace.toNanos();
                while ((!busy.isEmpty() || visiting > 0) && remaining > 0) {
                    remaining = allIdle.awaitNanos(remaining);
                }
            } catch (InterruptedException e) {
                interrupted = true;
            }
            for (Member member : idle) {
                members.add(member);
            }
            for (Member member : busy) {
                if (!member.gone) {
                    members.add(member);
                }
            }
            members.forEach(member -> leave(member, ExitReason.STOP));
            left = List.copyOf(departed);
            departed.clear();
            idle.clear();
            busy.clear();
            allIdle.signalAll();
        } finally {
            lock.unlock();
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (pendingReload != null) {
            pendingReload.completeExceptionally(new PoolException(Reason.CLOSED, "the server is shutting down"));
        }
        left.forEach(departureListener);
        timer.shutdownNow();
        List<Future<?>> stops = new ArrayList<>();
        for (Member member : members) {
            if (member.launched) {
                stops.add(stop(member.upstream));
            }
        }
        if (launcher != null) {
            launcher.close();
        }
        awaitStops(stops);
    }

    private void awaitStops(List<Future<?>> stops) {
        // Real time, whatever clock the pool was given for ages and backoff.
        long deadline = System.nanoTime() + STOP_GRACE.multipliedBy(2).plus(STOP_MARGIN).toNanos();
        int unfinished = 0;
        for (Future<?> stop : stops) {
            try {
                stop.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (TimeoutException | InterruptedException e) {
                unfinished++;
                if (e instanceof InterruptedException) {
                    Thread.currentThread().interrupt();
                }
            } catch (ExecutionException e) {
                // Logged by the stop itself.
            }
        }
        if (unfinished > 0) {
            log.accept(unfinished + " worker(s) had not exited when the pool closed; not waiting longer");
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
