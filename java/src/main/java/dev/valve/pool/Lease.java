package dev.valve.pool;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Use of one upstream for one request. Give it back exactly once: {@link #release()} when the
 * upstream answered, {@link #discard()} when it must not be used again, or {@link #keepPlace()}
 * when the request became a WebSocket that stays on the upstream. {@link #close()} releases
 * unless one of those already happened, so try-with-resources is always safe.
 *
 * <p>A lease from {@link WorkerPool#acquire} is exclusive: the upstream serves nobody else
 * meanwhile. One from {@link WorkerPool#visit} is shared with the other requests of the
 * upstream's sessions (a Shiny app answers them all from one process).
 */
public final class Lease implements AutoCloseable {
    private final WorkerPool pool;
    private final WorkerPool.Member member;
    private final boolean shared;
    private final boolean placed;
    /** The session's id within its upstream; null for an exclusive lease, or a session without one. */
    private final String session;
    private final AtomicBoolean returned = new AtomicBoolean();

    Lease(WorkerPool pool, WorkerPool.Member member, boolean shared, boolean placed, String session) {
        this.pool = pool;
        this.member = member;
        this.shared = shared;
        this.placed = placed;
        this.session = session;
    }

    public Upstream upstream() {
        return member.upstream;
    }

    /** Whether this request started a new session on the upstream: the client must learn {@link #sessionToken()}. */
    public boolean placed() {
        return placed;
    }

    /** Names the upstream and the session to {@link WorkerPool#visit} for the session's later requests. */
    public String sessionToken() {
        return session == null ? member.token : member.token + "." + session;
    }

    /** The upstream finished the request and may take the next one. */
    public void release() {
        if (returned.compareAndSet(false, true)) {
            giveBack(null);
        }
    }

    /** The upstream failed: it is stopped and leaves the pool. */
    public void discard() {
        discard(ExitReason.FAILED_REQUEST);
    }

    /**
     * The upstream failed or hung, for {@code why}: it is stopped and leaves the pool. Not an
     * upstream that serves sessions: one slow or failed request says nothing about the others it
     * serves, so the lease just ends (a process that died leaves through its exit watch).
     */
    public void discard(ExitReason why) {
        if (returned.compareAndSet(false, true)) {
            giveBack(why);
        }
    }

    /**
     * The upstream refused the connection: nothing reached it, and it serves nobody any more (a
     * process that died and is not reaped yet), so it leaves the pool, shared or not.
     */
    public void unreachable() {
        if (returned.compareAndSet(false, true)) {
            if (shared) {
                pool.endVisitUnreachable(member);
            } else {
                pool.giveBack(member, ExitReason.CRASH);
            }
        }
    }

    /**
     * The request became a WebSocket: the upstream counts one more open connection, which keeps
     * it from being stopped as idle, but it takes other requests again. Close the place when the
     * connection ends.
     */
    public Place keepPlace() {
        if (!returned.compareAndSet(false, true)) {
            throw new IllegalStateException("the lease has already ended");
        }
        return pool.keepPlace(member, shared, session);
    }

    private void giveBack(ExitReason why) {
        if (shared) {
            pool.endVisit(member);
        } else {
            pool.giveBack(member, why);
        }
    }

    @Override
    public void close() {
        release();
    }
}
