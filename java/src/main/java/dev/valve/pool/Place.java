package dev.valve.pool;

import java.util.concurrent.atomic.AtomicBoolean;

/** A WebSocket connection's hold on its upstream, from {@link Lease#keepPlace()}; close it exactly when the connection ends. */
public final class Place implements AutoCloseable {
    private final WorkerPool pool;
    private final WorkerPool.Member member;
    private final AtomicBoolean closed = new AtomicBoolean();

    Place(WorkerPool pool, WorkerPool.Member member) {
        this.pool = pool;
        this.member = member;
    }

    public Upstream upstream() {
        return member.upstream;
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            pool.leavePlace(member);
        }
    }
}
