package dev.valve.proxy;

import java.util.concurrent.atomic.AtomicLong;

/**
 * The bytes of bodies that all spools together may hold in memory. Each body may keep up to
 * {@code memory_buffer} in memory, but a thousand queued uploads of that size would not fit a
 * bounded heap: past the budget, bodies go to their temporary files instead, and the engine
 * never runs out of memory because of what clients send.
 */
final class MemoryBudget {
    private final long limit;
    private final AtomicLong used = new AtomicLong();

    MemoryBudget(long limit) {
        this.limit = limit;
    }

    /** A quarter of the heap the JVM may grow to, the rest being the engine's own. */
    static MemoryBudget quarterOfHeap() {
        return new MemoryBudget(Runtime.getRuntime().maxMemory() / 4);
    }

    /** Reserves {@code bytes} if they fit; the caller gives them back with {@link #release}. */
    boolean reserve(long bytes) {
        long now;
        do {
            now = used.get();
            if (now + bytes > limit) {
                return false;
            }
        } while (!used.compareAndSet(now, now + bytes));
        return true;
    }

    void release(long bytes) {
        used.addAndGet(-bytes);
    }
}
