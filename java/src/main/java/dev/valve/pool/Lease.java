package dev.valve.pool;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Exclusive use of one upstream for one request. Give it back exactly once: {@link #release()}
 * when the upstream answered, {@link #discard()} when it must not be used again. {@link #close()}
 * releases unless one of the two already happened, so try-with-resources is always safe.
 */
public final class Lease implements AutoCloseable {
    private final WorkerPool pool;
    private final WorkerPool.Member member;
    private final AtomicBoolean returned = new AtomicBoolean();

    Lease(WorkerPool pool, WorkerPool.Member member) {
        this.pool = pool;
        this.member = member;
    }

    public Upstream upstream() {
        return member.upstream;
    }

    /** The upstream finished the request and may take the next one. */
    public void release() {
        if (returned.compareAndSet(false, true)) {
            pool.giveBack(member, null);
        }
    }

    /** The upstream failed: it is stopped and leaves the pool. */
    public void discard() {
        discard(ExitReason.FAILED_REQUEST);
    }

    /** The upstream failed or hung, for {@code why}: it is stopped and leaves the pool. */
    public void discard(ExitReason why) {
        if (returned.compareAndSet(false, true)) {
            pool.giveBack(member, why);
        }
    }

    @Override
    public void close() {
        release();
    }
}
