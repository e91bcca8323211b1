package dev.valve.testing;

import java.time.Duration;
import java.util.function.BooleanSupplier;

/**
 * Waits for a condition that must become true. The deadline is generous because machines are
 * shared: it only turns a hang into a failure, it never measures speed.
 */
public final class Await {
    private static final Duration DEADLINE = Duration.ofSeconds(20);

    private Await() {
    }

    public static void until(String what, BooleanSupplier condition) {
        long end = System.nanoTime() + DEADLINE.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - end > 0) {
                throw new AssertionError("timed out waiting until " + what);
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting until " + what);
            }
        }
    }

    /** Joins a thread the test started; one that does not end is a hang, reported as a failure. */
    public static void joined(Thread thread) throws InterruptedException {
        if (!thread.join(DEADLINE)) {
            throw new AssertionError("timed out waiting for " + thread + " to end");
        }
    }
}
