package dev.valve.pool;

import java.time.Duration;
import java.util.function.LongSupplier;

/**
 * Delays launches after consecutive failures, so a broken API or a crash loop never makes the
 * engine spin: the first failure is retried at once, the second after {@code base}, then the
 * delay doubles up to {@code max}. A success clears it. Not thread-safe: the pool's lock guards it.
 */
final class Backoff {
    private final long base;
    private final long max;
    private final LongSupplier nanoTime;
    private int failures;
    private long notBefore;

    Backoff(Duration base, Duration max, LongSupplier nanoTime) {
        this.base = base.toNanos();
        this.max = max.toNanos();
        this.nanoTime = nanoTime;
        this.notBefore = nanoTime.getAsLong();
    }

    void failure() {
        failures++;
        // The cap on the shift only keeps it from overflowing; max is reached long before.
        long delay = failures <= 1 ? 0 : Math.min(max, base << Math.min(failures - 2, 20));
        notBefore = nanoTime.getAsLong() + delay;
    }

    void success() {
        failures = 0;
        notBefore = nanoTime.getAsLong();
    }

    /** Nanoseconds until the next launch may start; zero or less means now. */
    long remaining() {
        return notBefore - nanoTime.getAsLong();
    }
}
